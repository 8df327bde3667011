"""Verification records and their replay from an audit store: agreement, and tampering caught."""

import hashlib

import pytest
import torch
from bittensor.sp_core import Keypair

from node.audit.replay import Replayer
from node.audit.store import AuditStore
from node.cli import main
from node.config import RunSpec
from node.data.corpus import build_corpus_from_bytes
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.model import build_model
from node.verifier.verifier import Contribution, Verifier, VerifierSettings
from protocol import signing
from protocol.assignment import eval_pages
from protocol.compression import get_codec
from protocol.messages import ContributionMeta

SPEC = RunSpec()
RUN = SPEC.run_id


@pytest.fixture(scope="module")
def audit_store(tmp_path_factory):
    """A store holding the records of one verified round of three synthetic contributions."""
    root = tmp_path_factory.mktemp("audit")
    text = b"".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n\n".encode() for i in range(3000))
    corpus = build_corpus_from_bytes("synthetic", text, root / "corpus", page_tokens=512)
    store = AuditStore(root / "store")
    store.write_spec(SPEC)
    verifier_key = Keypair.create_from_uri("//Verifier")
    excluded = frozenset(eval_pages(RUN, corpus.num_pages, 2))
    verifier = Verifier(RUN, verifier_key, "tiny", corpus, excluded, pages_per_round=2, seq_len=128, store=store,
                        settings=VerifierSettings(samples=3, pages_per_check=1, windows_per_page=2))
    base = OuterState.fresh(params.flatten(build_model("tiny", 0)))
    codec = get_codec(SPEC.codec.codec_spec())
    contributions = {}
    for i, uri in enumerate(("//A", "//B", "//C")):
        key = Keypair.create_from_uri(uri)
        delta = torch.randn(base.theta.numel(), generator=torch.Generator().manual_seed(i)) * 1e-3
        payload = codec.encode(delta)
        meta = ContributionMeta(run_id=RUN, round=0, hotkey=key.ss58_address, peer_id=b"p", digest=hashlib.sha256(payload).digest(),
                                nbytes=len(payload), codec=SPEC.codec.name, base_state_hash=base.state_hash())
        contributions[key.ss58_address] = Contribution(signing.sign(meta, key), codec.decode(payload, base.theta.numel()), payload)
    records = verifier.verify_round(0, base, base.state_hash(), contributions)
    assert len(records) == 3 and {r.subject for r in records} == set(contributions)
    for record in records:
        signing.verify(record, RUN)
        assert record.base_state_hash == base.state_hash() and record.verdict in ("pass", "fail")
        assert len(record.compared) == 2 and len(record.page_digests) >= 2
    return store


def test_replay_agrees_bit_for_bit(audit_store):
    rows = Replayer(audit_store).replay_all()
    assert len(rows) == 3
    assert all(r.agrees and r.max_diff == 0.0 and r.replayed == r.verdict for r in rows), rows


def test_cli_replay_exit_codes(audit_store, capsys):
    assert main(["audit", "replay", "--store", str(audit_store.root)]) == 0
    assert "3 agree, 0 disagree" in capsys.readouterr().out
    assert main(["audit", "replay", "--store", str(audit_store.root), "--round", "5"]) == 1  # nothing to replay


def _copy_store(store, tmp_path):
    import shutil

    shutil.copytree(store.root, tmp_path / "copy")
    return AuditStore(tmp_path / "copy")


def test_tampered_record_is_reported(audit_store, tmp_path, capsys):
    store = _copy_store(audit_store, tmp_path)
    path = next(store.record_paths())
    data = bytearray(path.read_bytes())
    data[-70] ^= 1  # inside the signature or a metric
    path.write_bytes(bytes(data))
    rows = Replayer(store).replay_all()
    bad = [r for r in rows if not r.agrees]
    assert len(bad) == 1 and "corrupt" in bad[0].problem
    assert main(["audit", "replay", "--store", str(store.root)]) == 1


def test_re_signed_lie_is_reported(audit_store, tmp_path):
    """A verifier that rewrites its own verdict (validly signed) is caught by re-running the checks."""
    import dataclasses

    from protocol import wire

    store = _copy_store(audit_store, tmp_path)
    path = next(store.record_paths())
    record = store.read_record(path)
    flipped = dataclasses.replace(record, verdict="fail" if record.verdict == "pass" else "pass")
    path.unlink()
    store.put_record(signing.sign(flipped, Keypair.create_from_uri("//Verifier")))
    rows = Replayer(store).replay_all()
    bad = [r for r in rows if not r.agrees]
    assert len(bad) == 1 and "replays as" in bad[0].problem
    assert wire.decode(wire.encode(flipped)).verdict == flipped.verdict


@pytest.mark.parametrize("what", ["payload", "page", "state"])
def test_tampered_or_missing_input_is_reported(audit_store, tmp_path, what):
    store = _copy_store(audit_store, tmp_path)
    record = store.read_record(next(store.record_paths()))
    if what == "payload":
        target = store.root / "blobs" / record.payload_digest.hex()
        target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    elif what == "page":
        (store.root / "blobs" / record.page_digests[0].hex()).unlink()
    else:
        (store.root / "states" / f"{record.base_state_hash.hex()}.st").write_bytes(b"garbage")
    rows = Replayer(store).replay_all()
    assert any(not r.agrees for r in rows)
    assert all(r.replayed == "error" for r in rows if not r.agrees)


def test_audit_fetch_over_p2p_then_replay(audit_store, tmp_path):
    """An auditor pulls a node's records and inputs over a real libp2p stream and replays them."""
    import asyncio

    from hivemind.p2p import P2P

    from node.audit.fetch import fetch_audit
    from node.audit.serve import serve_audit

    async def scenario():
        server = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        try:
            await serve_audit(server, audit_store)
            maddr = str((await server.get_visible_maddrs())[0])
            count = await fetch_audit(maddr, 0, 3, tmp_path / "fetched")
            assert count == 3
            assert await fetch_audit(maddr, 5, 9, tmp_path / "empty") == 0
        finally:
            await server.shutdown()

    asyncio.run(scenario())
    rows = Replayer(AuditStore(tmp_path / "fetched")).replay_all()
    assert len(rows) == 3 and all(r.agrees for r in rows)
