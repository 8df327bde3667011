"""Pruning the audit store never takes the inputs of a verification that is still writing them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from node.audit.store import AuditStore
from node.round.verify import Verification


def _verification(tmp_path) -> Verification:
    scores = SimpleNamespace(forget_before=lambda r: None)
    return Verification(verifier=None, pool=None, board=None, scores=scores, audit=AuditStore(tmp_path), audit_rounds=4)


def test_a_blob_written_by_a_running_verification_survives_the_rounds_prune(tmp_path):
    verification = _verification(tmp_path)

    async def main() -> tuple[bool, bool]:
        async with verification._writing:  # a verification stored an input and has not written its record yet
            digest = verification.audit.put_blob(b"payload of a subject")
            await verification.forget(40)
            kept = (tmp_path / "blobs" / digest.hex()).exists()
        await verification.forget(41)  # no verification running: the unnamed blob is garbage now
        return kept, (tmp_path / "blobs" / digest.hex()).exists()

    kept, after = asyncio.run(main())
    assert kept and not after


def test_prune_leaves_files_being_written(tmp_path):
    store = AuditStore(tmp_path)
    store.put_blob(b"x")
    in_flight = tmp_path / "blobs" / ".abcd.tmp"
    in_flight.write_bytes(b"half")
    store.prune(10)
    assert in_flight.exists()
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [in_flight.name]
