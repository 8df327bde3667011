"""Verification records and their replay from an audit store (the `audit_store` fixture): agreement, and tampering caught."""

import pytest

from node.audit.replay import Replayer
from node.audit.store import AuditStore
from node.cli import main
from protocol import signing
from tests.support import keypair


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
    store.put_record(signing.sign(flipped, keypair("Verifier")))
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
