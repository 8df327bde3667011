"""Fixtures that tests of both kinds (tests/unit, tests/integration) share.

- ``chain``: a fresh dev chain at ``tmp_path / "chain.sqlite"``, with DevChain.create's defaults
  or the parameters of the test's ``chain`` marker: ``pytestmark = pytest.mark.chain(max_validators=1)``.
- ``spec``: a RunSpec on that dev chain. ``keys``, ``alice``, ``bob``: the dev keypairs.
- ``registered``: Alice and Bob registered and staked (Alice more), Eve not registered.
- ``btcli_cache``: the bittensor SDK's token-symbol cache kept out of $HOME.
- ``harness``: each ChainView contract test on the dev chain and on the Bittensor adapter.
- ``audit_store``: the audit records of one verified round.
"""

from __future__ import annotations

import hashlib

import pytest

from node.chain import DevChain
from node.config import ChainSpec, RunSpec
from tests.support import keypair


@pytest.fixture
def chain(request, tmp_path) -> DevChain:
    marker = request.node.get_closest_marker("chain")
    return DevChain.create(tmp_path / "chain.sqlite", **(marker.kwargs if marker else {}))


@pytest.fixture
def spec(chain) -> RunSpec:
    return RunSpec(chain=ChainSpec(kind="dev", path=str(chain.path)))


@pytest.fixture(scope="session")
def keys():
    return {name: keypair(name) for name in ("Alice", "Bob", "Eve")}


@pytest.fixture(scope="session")
def alice(keys):
    return keys["Alice"]


@pytest.fixture(scope="session")
def bob(keys):
    return keys["Bob"]


@pytest.fixture
def registered(chain, keys):
    """Alice and Bob registered and staked, Eve not registered: on a chain of ``max_validators=1``,
    Alice holds the validator permit and Bob none."""
    chain.register(keys["Alice"].ss58_address)
    chain.add_stake(keys["Alice"].ss58_address, 10)
    chain.register(keys["Bob"].ss58_address)
    chain.add_stake(keys["Bob"].ss58_address, 1)
    return keys


@pytest.fixture
def btcli_cache(monkeypatch, tmp_path):
    """Connecting caches token symbols on disk; keep that out of $HOME."""
    path = tmp_path / "symbols.json"
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(path))
    return path


@pytest.fixture(params=["devchain", "bittensor"])
def harness(request, tmp_path, monkeypatch, btcli_cache):
    from tests.support.chains import HARNESSES

    return HARNESSES[request.param](tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def audit_store(tmp_path_factory):
    """A store holding the records of one verified round of three synthetic contributions."""
    import torch

    from node.audit.store import AuditStore
    from node.data.build import build_corpus_from_bytes
    from node.outer.optimizer import OuterState
    from node.trainer import params
    from node.trainer.model import build_model
    from node.verifier.verifier import Contribution, Verifier, VerifierSettings
    from protocol import signing
    from protocol.assignment import eval_pages
    from protocol.compression import get_codec
    from protocol.messages import ContributionMeta

    spec = RunSpec()
    run = spec.run_id
    root = tmp_path_factory.mktemp("audit")
    text = b"".join(f"def function_{i}(x):\n    return x * {i} + {i % 7}\n\n".encode() for i in range(3000))
    corpus = build_corpus_from_bytes("synthetic", text, root / "corpus", page_tokens=512)
    store = AuditStore(root / "store")
    store.write_spec(spec)
    verifier_key = keypair("Verifier")
    excluded = frozenset(eval_pages(run, corpus.num_pages, 2))
    verifier = Verifier(
        run,
        verifier_key,
        "tiny",
        corpus,
        excluded,
        pages_per_round=2,
        seq_len=128,
        store=store,
        settings=VerifierSettings(samples=3, pages_per_check=1, windows_per_page=2),
    )
    base = OuterState.fresh(params.flatten(build_model("tiny", 0)))
    codec = get_codec(spec.codec.codec_spec())
    contributions = {}
    for i, name in enumerate(("A", "B", "C")):
        key = keypair(name)
        delta = torch.randn(base.theta.numel(), generator=torch.Generator().manual_seed(i)) * 1e-3
        payload = codec.encode(delta)
        meta = ContributionMeta(
            run_id=run,
            round=0,
            hotkey=key.ss58_address,
            peer_id=b"p",
            digest=hashlib.sha256(payload).digest(),
            nbytes=len(payload),
            codec=spec.codec.name,
            base_state_hash=base.state_hash(),
        )
        contributions[key.ss58_address] = Contribution(signing.sign(meta, key), codec.decode(payload, base.theta.numel()), payload)
    records = verifier.verify_round(0, base, base.state_hash(), contributions)
    assert len(records) == 3 and {r.subject for r in records} == set(contributions)
    for record in records:
        signing.verify(record, run)
        assert record.base_state_hash == base.state_hash() and record.verdict in ("pass", "fail")
        assert len(record.compared) == 2 and len(record.page_digests) >= 2
    return store
