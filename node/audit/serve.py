"""A node answers auditors: its audit store, read-only, over a libp2p stream.

Auditors need no stake, no wallet and no training: `gradswarm audit fetch`
connects to one node, lists its records for a range of rounds, and pulls
each record with every input it names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgpack
from hivemind.p2p import P2P

from node.audit.store import AuditError, AuditStore
from node.swarm.transfer import serve_requests
from protocol.messages import AuditRequest

STREAM = "gradswarm/audit/v1"
MAX_INDEX_ENTRIES = 100_000


def encode_index(digests: list[bytes]) -> bytes:
    return msgpack.packb(digests[:MAX_INDEX_ENTRIES], use_bin_type=True)


async def serve_audit(p2p: P2P, store: AuditStore, held: Callable[[bytes], Awaitable[bytes | None]]) -> None:
    """`held` answers for the states the node holds now (not yet in its audit store): what an exporter fetches."""

    def read(request: AuditRequest) -> bytes | None:
        root = store.root
        if request.kind == "spec":
            path = root / "spec.toml"
        elif request.kind == "index":
            digests = [digest for round_ in range(request.first_round, request.last_round + 1) for digest, _ in store.records(round_)]
            return encode_index(digests)
        elif request.kind == "record":
            found = next((p for p in store.record_paths() if p.stem == request.digest.hex()), None)
            if found is None:
                return None
            path = found
        elif request.kind == "blob":
            path = root / "blobs" / request.digest.hex()
        else:
            path = root / "states" / f"{request.digest.hex()}.st"
        try:
            return path.read_bytes()
        except (OSError, AuditError):
            return None

    async def answer(request: AuditRequest) -> bytes | None:
        data = await asyncio.to_thread(read, request)
        if data is None and request.kind == "state":
            data = await held(request.digest)
        return data

    await serve_requests(p2p, STREAM, AuditRequest, answer)
