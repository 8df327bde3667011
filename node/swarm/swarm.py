"""A node's presence in the swarm: the hivemind DHT for signed records and the
same libp2p daemon's streams for bulk bytes.

Records read back from the DHT are decoded and verified again here: the local
DHT validator already filtered them, but this keeps the node's own logic from
ever seeing an unchecked message, whatever the DHT process did.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TypeVar

import hivemind
from hivemind.p2p import P2P, PeerID
from hivemind.utils import get_dht_time

from node.chain import ChainView
from node.swarm import records, transfer
from protocol import signing, wire
from protocol.wire import ProtocolError

log = logging.getLogger(__name__)

M = TypeVar("M")


class Swarm:
    def __init__(self, run_id: bytes, chain: ChainView, *, bootstrap: list[str], host: str, port: int, identity_path: Path):
        self.run_id = run_id
        self.chain = chain
        self.bootstrap = bootstrap
        self.host = host
        self.port = port
        self.identity_path = identity_path
        self.dht: hivemind.DHT | None = None
        self.p2p: P2P | None = None
        self.bytes_served = {"payload": 0, "state": 0}

    async def start(self, lookup: transfer.BlobLookup) -> None:
        """Join the DHT through the bootstrap peers and start serving blobs."""
        self.identity_path.parent.mkdir(parents=True, exist_ok=True)
        self.dht = await asyncio.to_thread(
            hivemind.DHT,
            initial_peers=self.bootstrap,
            host_maddrs=[f"/ip4/{self.host}/tcp/{self.port}"],
            identity_path=str(self.identity_path),
            record_validators=[records.RunRecordValidator(self.run_id, self.chain)],
            start=True,
            await_ready=True,
        )
        self.p2p = await self.dht.replicate_p2p()

        async def counted(kind: str, digest: bytes) -> bytes | None:
            data = await lookup(kind, digest)
            if data is not None:
                self.bytes_served[kind] += len(data)
            return data

        await transfer.serve(self.p2p, self.run_id, counted)

    @property
    def peer_id(self) -> bytes:
        assert self.dht is not None
        return self.dht.peer_id.to_bytes()

    def visible_maddrs(self) -> list[str]:
        assert self.dht is not None
        return [str(a) for a in self.dht.get_visible_maddrs()]

    async def put(self, msg: object, expires_at: float) -> bool:
        """Store a signed message under the key its content names."""
        assert self.dht is not None
        expires_at = min(expires_at, get_dht_time() + records.MAX_RECORD_TTL - 60)
        return bool(
            await self.dht.store(
                records.key_for(msg), wire.encode(msg), expires_at, subkey=msg.hotkey, return_future=True  # type: ignore[attr-defined]
            )
        )

    async def get(self, key: str, kind: type[M]) -> list[M]:
        """Every valid `kind` message stored under `key`, one per signer."""
        assert self.dht is not None
        found = await self.dht.get(key, latest=True, return_future=True)
        if found is None or not isinstance(found.value, dict):
            return []
        messages = []
        for subkey, item in found.value.items():
            try:
                msg = wire.decode(item.value, kind)
                signing.verify(msg, self.run_id)
                if msg.hotkey != subkey:  # type: ignore[attr-defined]
                    raise ProtocolError("subkey is not the signer")
                messages.append(msg)
            except ProtocolError as e:
                log.warning("ignoring record under %s: %s", key, e)
        return messages

    async def fetch(self, peer_id: bytes, kind: str, digest: bytes, max_bytes: int, timeout: float = 60.0) -> bytes:
        """Bytes whose sha256 (payloads) the caller checks; raises TransferError."""
        assert self.p2p is not None
        try:
            peer = PeerID(peer_id)
        except Exception as e:
            raise transfer.TransferError(f"malformed peer id: {e}") from None
        if peer == self.p2p.peer_id:
            raise transfer.TransferError("refusing to fetch from ourselves")
        return await transfer.fetch(self.p2p, peer, self.run_id, kind, digest, max_bytes, timeout)

    async def shutdown(self) -> None:
        if self.dht is not None:
            await asyncio.to_thread(self.dht.shutdown)
            self.dht = None
