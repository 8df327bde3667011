"""Which libp2p peer ids speak for which registered hotkeys: the chain's commitments.

A node commits its PeerBinding (wire-encoded, signed by its hotkey) as its
subnet commitment. Commitments cost a chain transaction and only registered
hotkeys can make them, so a Sybil cannot bind a peer id it runs. Peers refuse
transport streams from, and payload fetches to, peer ids no registered hotkey
has bound; the DHT is never the authority for who a peer is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from node.chain import ChainError, ChainView
from protocol import signing, wire
from protocol.messages import PeerBinding
from protocol.signing import Signer
from protocol.wire import ProtocolError

log = logging.getLogger(__name__)

BINDING_CACHE_SECONDS = 5.0  # a freshly committed binding is honoured within this long
BINDING_LIFETIME = 7 * 24 * 3600.0  # a commitment is a chain transaction: renew it rarely
RENEW_BEFORE = 24 * 3600.0  # ... once less than this is left, or the peer id changed


def signed_binding(run_id: bytes, keypair: Signer, peer_id: bytes, now: float | None = None) -> bytes:
    """The commitment a node makes: its PeerBinding, signed and wire-encoded (~215 bytes)."""
    now = time.time() if now is None else now
    binding = PeerBinding(run_id=run_id, hotkey=keypair.ss58_address, peer_id=peer_id, expires_at=now + BINDING_LIFETIME)
    return wire.encode(signing.sign(binding, keypair))


def parse_commitment(run_id: bytes, hotkey: str, data: bytes, now: float) -> PeerBinding | None:
    """The binding committed by `hotkey`, if `data` is one for this run, signed by that hotkey and unexpired."""
    try:
        binding = wire.decode(data, PeerBinding)
        signing.verify(binding, run_id)
    except ProtocolError:
        return None  # another run's commitment, or anything else a hotkey chose to commit
    if binding.hotkey != hotkey or binding.expires_at <= now:
        return None
    return binding


@dataclass
class ChainBindings:
    """Registered hotkeys' committed peer ids, re-read from the chain at most every few seconds.

    Reads run in a worker thread (a chain read may block); when the chain cannot
    be read, the last answer stays in force.
    """

    run_id: bytes
    chain: ChainView
    cache_seconds: float = BINDING_CACHE_SECONDS
    _by_hotkey: dict[str, PeerBinding] = field(default_factory=dict)
    _by_peer: dict[bytes, str] = field(default_factory=dict)
    _read_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _read(self) -> dict[str, PeerBinding]:
        registered = {n.hotkey for n in self.chain.neurons()}
        now = time.time()
        out = {}
        for hotkey, data in self.chain.commitments().items():
            binding = parse_commitment(self.run_id, hotkey, data, now) if hotkey in registered else None
            if binding is not None:
                out[hotkey] = binding
        return out

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self.cache_seconds:
                return
            try:
                by_hotkey = await asyncio.to_thread(self._read)
            except ChainError as e:
                log.warning("could not read peer bindings from the chain: %s", e)
                return
            finally:
                self._read_at = time.monotonic()
            self._by_hotkey = by_hotkey
            self._by_peer = {b.peer_id: h for h, b in by_hotkey.items()}

    async def hotkey_of(self, peer_id: bytes) -> str | None:
        """The registered hotkey that bound `peer_id`, or None: such a peer is refused."""
        await self.refresh()
        return self._by_peer.get(peer_id)

    async def peer_of(self, hotkey: str) -> bytes | None:
        """The peer id `hotkey` committed, if it is registered and bound."""
        await self.refresh()
        binding = self._by_hotkey.get(hotkey)
        return binding.peer_id if binding else None

    async def bound_hotkeys(self) -> set[str]:
        await self.refresh()
        return set(self._by_hotkey)

    async def bound_peers(self) -> list[bytes]:
        """Every peer id a registered hotkey has bound: whom records are pushed to."""
        await self.refresh()
        return sorted(self._by_peer)

    def committed(self, hotkey: str) -> PeerBinding | None:
        """What the last read saw `hotkey` commit (no chain read)."""
        return self._by_hotkey.get(hotkey)

    def forget(self) -> None:
        """Read the chain again on the next question (after our own commitment changed)."""
        self._read_at = float("-inf")
