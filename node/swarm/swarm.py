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
routing tables. node/swarm/watch.py keeps the stack alive (rejoining, and
replacing a dead daemon).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import hivemind
from hivemind.p2p import P2P, PeerID
from hivemind.utils import get_dht_time

from node.chain import ChainView
from node.swarm import push, records, transfer
from node.swarm.binding import ChainBindings
from node.swarm.owned import start_dht
from node.swarm.reads import READ_PATIENCE, PatientReads
from node.swarm.watch import dht_answer, watch
from protocol import signing, wire
from protocol.lifetimes import MAX_RECORD_TTL
from protocol.wire import ProtocolError, Rejection

log = logging.getLogger(__name__)

M = TypeVar("M")
Service = Callable[[P2P], Awaitable[None]]  # registers a stream handler on a daemon


def background(tasks: set[asyncio.Task], work: Awaitable, name: str) -> asyncio.Task:
    """Run `work` as a task held in `tasks` until it ends (shutdown cancels what is left)."""
    task = asyncio.ensure_future(work)
    task.set_name(name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


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
        self._tasks: set[asyncio.Task] = set()  # pushes and stores in flight
        self._reads = PatientReads(
            lambda key: dht_answer(self.dht.get(key, latest=True, return_future=True), f"reading {key}", None)  # type: ignore[union-attr]
        )
        self._watchdog: asyncio.Task | None = None

    async def start(self, lookup: transfer.BlobLookup, *services: Service) -> None:
        """Join the DHT through the bootstrap peers and start serving blobs and `services`
        (stream handlers registered again on every new daemon, node/swarm/watch.py)."""
        self.identity_path.parent.mkdir(parents=True, exist_ok=True)
        self._lookup, self._services = lookup, services
        await self.open_stack()
        self._watchdog = asyncio.create_task(watch(self), name="swarm-watch")

    async def open_stack(self) -> None:
        """A DHT process with its own p2pd, our client of that daemon, and every stream handler on it."""
        self.dht = await asyncio.to_thread(
            start_dht,
            initial_peers=self.bootstrap,
            host_maddrs=[f"/ip4/{self.host}/tcp/{self.port}"],
            identity_path=str(self.identity_path),
            record_validators=[records.RunRecordValidator(self.run_id, self.chain, round_now=self.inbox.round_now)],
            # hivemind's get-reuse keeps an entry for every key ever read (about 1.8 KB each, never
            # removed): a node reads new keys every round. PatientReads already joins concurrent reads.
            reuse_get_requests=False,
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

    @property
    def peer_id(self) -> bytes:
        assert self.dht is not None
        return self.dht.peer_id.to_bytes()

    def visible_maddrs(self) -> list[str]:
        assert self.dht is not None
        return [str(a) for a in self.dht.get_visible_maddrs()]

    async def put(self, msg: object, expires_at: float) -> bool:
        """Store a signed message under the key its content names, and push it to the bound peers
        (in the background: an offline peer must not hold up the round). Whether the DHT took it
        within the read patience; a slower store goes on in the background (under a partition the
        online binding's store took 9 s and held round 3's start past its latest, node/swarm/reads.py)."""
        assert self.dht is not None
        background(self._tasks, self._push(msg), "record-push")
        expires_at = min(expires_at, get_dht_time() + MAX_RECORD_TTL - 60)
        stored = self.dht.store(records.key_for(msg), wire.encode(msg), expires_at, subkey=msg.hotkey, return_future=True)  # type: ignore[attr-defined]
        task = background(self._tasks, dht_answer(stored, f"storing a {type(msg).__name__}", False), "record-store")
        done, _ = await asyncio.wait({task}, timeout=READ_PATIENCE)
        return bool(task.result()) if task in done else False

    async def _push(self, msg: object) -> None:
        assert self.p2p is not None
        try:
            peers = [PeerID(p) for p in await self.bindings.bound_peers() if p != self.peer_id]
            await push.push(self.p2p, peers, self.run_id, msg)
        except Exception as e:  # a background task: the DHT copy stands, the next record tries again
            log.warning("pushing a %s failed: %r", type(msg).__name__, e)

    async def get(self, key: str, kind: type[M]) -> list[M]:
        """Every valid `kind` message stored under `key` or pushed to us for it, one per signer. A DHT
        that is slow to answer (node/swarm/reads.py) leaves only the pushed ones, this time."""
        found = await self._reads.get(key)
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
        for task in list(self._tasks):
            task.cancel()
        self._reads.cancel()
        if self.dht is not None:
            await asyncio.to_thread(self.dht.shutdown)
            self.dht = None
