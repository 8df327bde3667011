"""A node's presence in the swarm: the hivemind DHT for signed records and the
same libp2p daemon's streams for bulk bytes.

Every record stored in the DHT is also pushed to the chain-bound peers
(node/swarm/push.py), and reads merge both: Sybils standing near a DHT key
cannot make honest records vanish.

Records read back from the DHT are decoded and verified again here: the local
DHT validator already filtered them, but this keeps the node's own logic from
ever seeing an unchecked message, whatever the DHT process did.

Bootstraps are only needed to get in: a node joins while any one of its
bootstrap list answers, and once in, nodes know each other from the DHT's
routing tables. A node left with no connected peer at all re-dials the
bootstrap list, with exponential backoff, until one answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import hivemind
from hivemind.dht.node import DHTNode
from hivemind.p2p import P2P, PeerID
from hivemind.utils import get_dht_time
from hivemind.utils.multiaddr import Multiaddr

from node.chain import ChainView
from node.swarm import push, records, transfer
from node.swarm.binding import ChainBindings
from node.swarm.owned import OwnedDHT
from protocol import signing, wire
from protocol.lifetimes import MAX_RECORD_TTL
from protocol.wire import ProtocolError, Rejection

log = logging.getLogger(__name__)

M = TypeVar("M")
A = TypeVar("A")

WATCH_SECONDS = 5.0  # how often a node checks that it still has peers
REJOIN_FIRST_DELAY = 2.0  # then doubling after every failed round of dials ...
REJOIN_MAX_DELAY = 120.0  # ... up to this
DHT_CALL_SECONDS = 20.0  # a DHT read or write that takes longer is given up
DAEMON_CHECKS = 3  # consecutive watches the p2p daemon left unanswered before it is replaced

Service = Callable[[P2P], Awaitable[None]]  # registers a stream handler on a daemon


async def rejoin(_dht: hivemind.DHT, node: DHTNode, maddrs: tuple[str, ...]) -> int:
    """Runs in the DHT process: dial each bootstrap, ping it into the routing table,
    then look ourselves up to find the rest of the swarm. How many bootstraps answered."""
    answered = 0
    for maddr in maddrs:
        try:
            addr = Multiaddr(maddr)
            peer = PeerID.from_base58(addr.value_for_protocol("p2p"))
            # hivemind's P2P has no public connect; its own identity check uses the client's.
            # Dial with the listed address: after a long outage p2pd may no longer hold one.
            await node.p2p._client.connect(peer, [addr.decapsulate(Multiaddr(f"/p2p/{peer.to_base58()}"))])
        except Exception as e:  # unreachable, refused, malformed: try the next one
            log.debug("could not dial bootstrap %s: %r", maddr, e)
            continue
        if await node.protocol.call_ping(peer) is not None:
            answered += 1
    if answered:
        await node.find_nearest_nodes([node.node_id])
    return answered


class Swarm:
    def __init__(
        self,
        run_id: bytes,
        chain: ChainView,
        *,
        bootstrap: list[str],
        host: str,
        port: int,
        identity_path: Path,
        round_now: Callable[[], int] | None = None,
    ):
        self.run_id = run_id
        self.chain = chain
        self.bootstrap = bootstrap
        self.host = host
        self.port = port
        self.identity_path = identity_path
        self.dht: hivemind.DHT | None = None
        self.p2p: P2P | None = None
        self.bytes_served = {"payload": 0, "state": 0}
        self.bytes_received = {"payload": 0, "state": 0}  # fetched from peers (hash checks are the caller's)
        self.bindings = ChainBindings(run_id, chain)  # who may open streams to us, and whom we fetch from
        self.refused_streams = 0
        self.inbox = push.Inbox(records.RunRecordValidator(run_id, chain), round_now=round_now)
        self._pushes: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None

    async def start(self, lookup: transfer.BlobLookup, *services: Service) -> None:
        """Join the DHT through the bootstrap peers and start serving blobs and `services`
        (stream handlers registered again on every new daemon, see `_watch`)."""
        self.identity_path.parent.mkdir(parents=True, exist_ok=True)
        self._lookup, self._services = lookup, services
        await self._open()
        self._watchdog = asyncio.create_task(self._watch(), name="swarm-watch")

    async def _open(self) -> None:
        """A DHT process with its own p2pd, our client of that daemon, and every stream handler on it."""
        self.dht = await asyncio.to_thread(
            OwnedDHT,
            initial_peers=self.bootstrap,
            host_maddrs=[f"/ip4/{self.host}/tcp/{self.port}"],
            identity_path=str(self.identity_path),
            record_validators=[records.RunRecordValidator(self.run_id, self.chain)],
            start=True,
            await_ready=True,
        )
        self.p2p = await self.dht.replicate_p2p()
        lookup = self._lookup

        async def counted(kind: str, digest: bytes) -> bytes | None:
            data = await lookup(kind, digest)
            if data is not None:
                self.bytes_served[kind] += len(data)
            return data

        await transfer.serve(self.p2p, self.run_id, counted, self._bound)
        await push.serve(self.p2p, self.run_id, self.inbox, self._bound)
        for service in self._services:
            await service(self.p2p)

    async def _bound(self, peer_id: bytes) -> bool:
        """Only peer ids a registered hotkey has bound on chain may open fetch streams."""
        if await self.bindings.hotkey_of(peer_id) is not None:
            return True
        self.refused_streams += 1
        return False

    async def _watch(self) -> None:
        """Keep the p2p stack alive and joined.

        A p2pd that stops answering (killed, out of memory) leaves the node deaf and mute while it
        still trains: after DAEMON_CHECKS unanswered checks, or when the DHT process is gone, the
        stack is replaced by a new one with the same identity (so the same bound peer id). With no
        connected peer, the bootstrap list is re-dialed with backoff."""
        delay, unanswered = REJOIN_FIRST_DELAY, 0
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            assert self.dht is not None and self.p2p is not None
            try:
                peers = await asyncio.wait_for(self.p2p.list_peers(), WATCH_SECONDS)
                unanswered = 0
            except Exception as e:
                unanswered += 1
                if unanswered >= DAEMON_CHECKS or not self.dht.is_alive():
                    log.error("the p2p daemon stopped answering (%r): starting a new one", e)
                    await self._reopen()
                    unanswered = 0
                continue
            try:
                while not peers and self.bootstrap:
                    log.warning("no peers left: re-dialing %d bootstrap peers", len(self.bootstrap))
                    dialing = self.dht.run_coroutine(partial(rejoin, maddrs=tuple(self.bootstrap)), return_future=True)
                    answered = await self._answer(dialing, "re-dialing the bootstraps", 0)
                    if answered:
                        log.info("rejoined the swarm through %d of %d bootstrap peers", answered, len(self.bootstrap))
                        delay = REJOIN_FIRST_DELAY
                        break
                    log.warning("no bootstrap peer answered; next try in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, REJOIN_MAX_DELAY)
            except Exception as e:  # a hiccup of the DHT process must not end the watch
                log.warning("peer watch failed: %r", e)

    async def _reopen(self) -> None:
        old_dht, old_p2p = self.dht, self.p2p
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old_p2p.shutdown(), WATCH_SECONDS)
        await asyncio.to_thread(old_dht.shutdown)  # hivemind terminates a DHT process that does not stop
        while True:
            try:
                await self._open()
                log.info("the p2p stack is back: peer %s on %s", self.dht.peer_id, self.visible_maddrs())
                return
            except Exception as e:  # e.g. the port is still held: try again
                log.error("starting a new p2p stack failed: %r", e)
                await asyncio.sleep(WATCH_SECONDS)

    @property
    def peer_id(self) -> bytes:
        assert self.dht is not None
        return self.dht.peer_id.to_bytes()

    def visible_maddrs(self) -> list[str]:
        assert self.dht is not None
        return [str(a) for a in self.dht.get_visible_maddrs()]

    async def put(self, msg: object, expires_at: float) -> bool:
        """Store a signed message under the key its content names, and push it to the bound peers
        (in the background: an offline peer must not hold up the round). Whether the DHT took it."""
        assert self.dht is not None
        task = asyncio.create_task(self._push(msg), name="record-push")
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)
        expires_at = min(expires_at, get_dht_time() + MAX_RECORD_TTL - 60)
        stored = self.dht.store(records.key_for(msg), wire.encode(msg), expires_at, subkey=msg.hotkey, return_future=True)  # type: ignore[attr-defined]
        return bool(await self._answer(stored, f"storing a {type(msg).__name__}", False))

    async def _answer(self, future: Awaitable[A], what: str, otherwise: A) -> A:
        """What the DHT process answers, or `otherwise` after DHT_CALL_SECONDS: a DHT process that died
        (its p2pd killed) never answers, and a round task waiting on it would never end."""
        try:
            return await asyncio.wait_for(future, DHT_CALL_SECONDS)
        except TimeoutError:
            log.warning("%s: the DHT did not answer within %.0f s", what, DHT_CALL_SECONDS)
            return otherwise

    async def rejections(self) -> dict[str, int] | None:
        """The DHT validator's refusal counts by reason; None when the DHT process does not answer."""
        assert self.dht is not None
        return await self._answer(self.dht.run_coroutine(records.validator_rejections, return_future=True), "reading refusals", None)

    async def _push(self, msg: object) -> None:
        assert self.p2p is not None
        try:
            peers = [PeerID(p) for p in await self.bindings.bound_peers() if p != self.peer_id]
            await push.push(self.p2p, peers, self.run_id, msg)
        except Exception as e:  # a background task: the DHT copy stands, the next record tries again
            log.warning("pushing a %s failed: %r", type(msg).__name__, e)

    async def get(self, key: str, kind: type[M]) -> list[M]:
        """Every valid `kind` message stored under `key` or pushed to us for it, one per signer."""
        assert self.dht is not None
        found = await self._answer(self.dht.get(key, latest=True, return_future=True), f"reading {key}", None)
        messages: dict[str, M] = {}
        for subkey, item in found.value.items() if found is not None and isinstance(found.value, dict) else ():
            try:
                msg = wire.decode(item.value, kind)
                signing.verify(msg, self.run_id)
                if msg.hotkey != subkey:  # type: ignore[attr-defined]
                    raise ProtocolError("subkey is not the signer", reason=Rejection.MISPLACED)
                messages[subkey] = msg
            except ProtocolError as e:
                log.warning("ignoring record under %s: %s", key, e)
        self.inbox.fill(key, kind, messages)
        return list(messages.values())

    def forget_before(self, round_: int) -> None:
        self.inbox.forget_before(round_)

    async def fetch(
        self, peer_id: bytes, kind: str, digest: bytes, max_bytes: int, timeout: float = 60.0, progress: transfer.Progress | None = None
    ) -> bytes:
        """Bytes whose sha256 (payloads) the caller checks; raises TransferError. `progress` sees them arrive."""
        assert self.p2p is not None
        try:
            peer = PeerID(peer_id)
        except Exception as e:
            raise transfer.TransferError(f"malformed peer id: {e}") from None
        if peer == self.p2p.peer_id:
            raise transfer.TransferError("refusing to fetch from ourselves")
        if await self.bindings.hotkey_of(peer_id) is None:
            raise transfer.TransferError(f"peer {peer} is not bound to a registered hotkey on chain")
        data = await transfer.fetch(self.p2p, peer, self.run_id, kind, digest, max_bytes, timeout, progress)
        self.bytes_received[kind] = self.bytes_received.get(kind, 0) + len(data)
        return data

    async def shutdown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for task in list(self._pushes):
            task.cancel()
        if self.dht is not None:
            await asyncio.to_thread(self.dht.shutdown)
            self.dht = None
