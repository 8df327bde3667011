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
    """Registered hotkeys' committed peer ids, as the chain view answers now.

    Every question asks the view (in a worker thread: a chain read may block),
    whose refresh windows decide when the chain itself is read again; a
    commitment written through the same view is seen at once. The maps are
    derived from the view's answer and rebuilt only when that answer changes
    or a binding in them expires, so a question costs a cached read and one
    comparison. When the chain cannot be read, the last maps stay in force.
    """

    run_id: bytes
    chain: ChainView
    _source: tuple[frozenset[str], dict[str, bytes]] | None = None  # (registered, commitments) the maps came from
    _by_hotkey: dict[str, PeerBinding] = field(default_factory=dict)
    _by_peer: dict[bytes, str] = field(default_factory=dict)
    _expires_at: float = float("inf")  # when the first binding in the maps expires
    _last_error: str = ""  # each failure to read is logged once, not on every question
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _rebuild(self) -> None:
        """In a worker thread, one at a time: re-derive the maps if the view's answer changed."""
        source = (frozenset(n.hotkey for n in self.chain.neurons()), self.chain.commitments())
        now = time.time()
        if source == self._source and now < self._expires_at:
            return
        registered, commitments = source
        by_hotkey = {}
        for hotkey, data in commitments.items():
            binding = parse_commitment(self.run_id, hotkey, data, now) if hotkey in registered else None
            if binding is not None:
                by_hotkey[hotkey] = binding
        self._source = source
        self._by_hotkey = by_hotkey
        self._by_peer = {b.peer_id: h for h, b in by_hotkey.items()}
        self._expires_at = min((b.expires_at for b in by_hotkey.values()), default=float("inf"))

    async def refresh(self) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._rebuild)
            except ChainError as e:
                if str(e) != self._last_error:
                    log.warning("could not read peer bindings from the chain: %s", e)
                self._last_error = str(e)
                return
            self._last_error = ""

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
        """Rebuild the maps at the next question (after our own commitment changed). The
        view answers that question afresh anyway: the commitment went through it, which
        ended its refresh windows."""
        self._source = None
