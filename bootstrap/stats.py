"""What the bootstrap knows about itself, sampled in the background for /healthz and /metrics.

hivemind runs the DHT node in a child process, so its routing table,
storage and validator counts are read there (`dht_stats`, through
`DHT.run_coroutine`). Once the daemon is up, one sampler thread is the only
caller of the DHT process: every few seconds it reads those figures and keeps
the latest `Snapshot`, and every 30 s it re-dials the other bootstraps and
refreshes the routing table. HTTP requests only read the snapshot, so no
number of scrapes can queue work in the DHT process or wait on it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from secrets import token_hex

import hivemind
import psutil
from hivemind.dht.node import DHTNode
from hivemind.dht.storage import DHTLocalStorage, DictionaryDHTValue

from bootstrap.netio import TcpTraffic
from bootstrap.validation import REASONS, CountingValidator
from node.swarm.watch import rejoin

log = logging.getLogger(__name__)

DHT_TIMEOUT = 10.0  # a DHT process that cannot answer this fast is reported stale
HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True)
class DHTStats:
    peers_connected: int  # peers p2pd holds a live connection to
    routing_table_peers: int  # DHT nodes in the routing table, replacement candidates included
    records_stored: int  # unexpired (key, subkey) records this node is responsible for
    records_cached: int  # unexpired records it keeps as a cache of lookups
    accepted: int  # records the run's validator let in (stores offered to us and values we read)
    rejected: dict[str, int]  # the rest, by reason (bootstrap.validation.REASONS)


def _count_records(storage: DHTLocalStorage) -> int:
    return sum(len(item.value) if isinstance(item.value, DictionaryDHTValue) else 1 for _, item in storage.items())


async def dht_stats(_dht: hivemind.DHT, node: DHTNode) -> DHTStats:
    """Runs inside the DHT process (module-level, so it pickles by name)."""
    protocol = node.protocol
    # CompositeValidator keeps its parts in `_validators`; the bootstrap installs exactly one.
    counting = [v for v in getattr(protocol.record_validator, "_validators", []) if isinstance(v, CountingValidator)]
    rejected = dict.fromkeys(REASONS, 0)
    accepted = 0
    for validator in counting:
        accepted += validator.accepted
        for reason, count in validator.rejected.items():
            rejected[reason] += count
    return DHTStats(
        peers_connected=len(await node.p2p.list_peers()),
        routing_table_peers=len(protocol.routing_table.uid_to_peer_id),
        records_stored=_count_records(protocol.storage),
        records_cached=_count_records(protocol.cache),
        accepted=accepted,
        rejected=rejected,
    )


async def heartbeat(dht: hivemind.DHT, node: DHTNode, peers: tuple[str, ...]) -> None:
    """Re-dial the other bootstraps (connected ones are a no-op), then look up a random key:
    that contacts the nearest peers and drops dead ones from the routing table."""
    if peers:
        await rejoin(dht, node, peers)
    await node.get(f"heartbeat_{token_hex(16)}", latest=True)


@dataclass(frozen=True)
class Snapshot:
    peer_id: str
    started_at: float
    dht: DHTStats | None  # None until the DHT process first answered
    dht_sampled_at: float  # time.time() of that answer; 0 if none yet
    bytes_in: int | None  # None where the kernel counters cannot be read (see bootstrap.netio)
    bytes_out: int | None
    resident_bytes: dict[str, int] = field(default_factory=dict)  # main, dht, p2pd

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at

    def dht_age(self) -> float:
        return time.time() - self.dht_sampled_at if self.dht is not None else float("inf")


class Sampler(threading.Thread):
    """Refreshes the snapshot every `interval` seconds, and keeps up with `peers`, until `stop`."""

    def __init__(self, dht: hivemind.DHT, peer_id: str, interval: float = 5.0, peers: tuple[str, ...] = ()):
        super().__init__(name="bootstrap-sampler", daemon=True)
        self.dht = dht
        self.interval = interval
        self.peers = peers
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._processes = self._find_processes()
        p2pd = self._processes.get("p2pd")
        self._traffic = TcpTraffic(p2pd.pid) if p2pd is not None else None
        self._last_heartbeat = time.monotonic()
        self._snapshot = Snapshot(peer_id, time.time(), None, 0.0, None, None)
        self.refresh()

    def _find_processes(self) -> dict[str, psutil.Process]:
        processes = {"main": psutil.Process(os.getpid()), "dht": psutil.Process(self.dht.pid)}
        for child in processes["dht"].children():
            if child.name() == "p2pd":
                processes["p2pd"] = child
        return processes

    def latest(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def refresh(self) -> None:
        old = self.latest()
        stats, sampled_at = old.dht, old.dht_sampled_at
        try:
            stats = self.dht.run_coroutine(dht_stats, return_future=True).result(timeout=DHT_TIMEOUT)
            sampled_at = time.time()
        except Exception as e:  # a busy or dying DHT process: keep the old figures, their age tells
            log.warning("could not read the DHT's state: %r", e)
        bytes_in, bytes_out = old.bytes_in, old.bytes_out
        if self._traffic is not None:
            try:
                bytes_in, bytes_out = self._traffic.sample()
            except OSError as e:
                log.warning("cannot read TCP byte counters, leaving them out of /metrics: %s", e)
                self._traffic = None
                bytes_in = bytes_out = None
        resident = {}
        for name, process in self._processes.items():
            try:
                resident[name] = process.memory_info().rss
            except psutil.Error:
                pass  # exited: not reported
        with self._lock:
            self._snapshot = Snapshot(old.peer_id, old.started_at, stats, sampled_at, bytes_in, bytes_out, resident)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.refresh()
            if time.monotonic() - self._last_heartbeat >= HEARTBEAT_SECONDS:
                self._last_heartbeat = time.monotonic()
                try:
                    self.dht.run_coroutine(partial(heartbeat, peers=self.peers), return_future=True).result(timeout=DHT_TIMEOUT)
                except Exception as e:
                    log.warning("DHT heartbeat failed: %r", e)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=DHT_TIMEOUT + 5)
