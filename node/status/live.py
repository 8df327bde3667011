"""StatusBoard: the event loop's side of the operator view.

The node tells the board when it has joined and when a round is finished; once a second the board
publishes a fresh immutable Snapshot (node/status/snapshot.py) as `current`, and the HTTP threads
read only that reference. Everything that could block (the chain's answer about our neuron, the
peer counts from p2pd, the chain bindings) is read every few seconds in the background, never on a
request. Building a snapshot copies a few counters and reuses the report dicts, which are made
once, when their round finishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from node.round.report import RoundReport
from node.status.snapshot import REPORTS_KEPT, Identity, Resources, Snapshot, Totals, totals_after

if TYPE_CHECKING:
    from node.service import SwarmNode

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 1.0
SLOW_EVERY = 5  # publications between reads of the chain and of the peer counts


class StatusBoard:
    def __init__(self, node: SwarmNode, clock: Callable[[], float] = time.time):
        self.node = node
        self.clock = clock
        self.started_at = clock()
        self.reports: deque[dict] = deque(maxlen=REPORTS_KEPT)
        self.totals = Totals()
        self.first_round_start: float | None = None
        self.neuron = None  # the chain's answer about our hotkey
        self.peers: tuple[int | None, int | None] = (None, None)
        self.received: tuple[tuple[int, str, str], ...] = ()
        self._received_seen: set[tuple[int, str]] = set()
        self._chain_failures = 0
        self.current = self.build()

    def joined(self, first_round: int) -> None:
        self.first_round_start = self.node.schedule.deadlines(first_round).start
        self.publish()

    def round_finished(self, report: RoundReport) -> None:
        """Called by the round engine right after the report went to rounds.jsonl."""
        as_written = json.loads(report.to_json())  # the same keys and values as the file's line
        self.reports.append(as_written)
        self.totals = totals_after(self.totals, as_written)
        self.publish()

    def publish(self) -> None:
        self.current = self.build()

    def build(self) -> Snapshot:
        node = self.node
        swarm = node.swarm
        health = node.chain.health()  # the guard's state: never a chain call
        failures = health.failures
        errors = self.totals.chain_errors + (failures - self._chain_failures if failures >= self._chain_failures else failures)
        self._chain_failures = failures
        self.totals = replace(
            self.totals, bytes_sent=dict(swarm.bytes_served), bytes_received=dict(swarm.bytes_received), chain_errors=errors
        )
        resources = Resources(
            rss_bytes=node.memory.last or None,
            peak_rss_bytes=node.memory.peak or None,
            gpu_memory_bytes=_gpu_bytes(node.device),
            checkpoint_mtime=_mtime(node.files.state),
            chain_outage=not health.reachable,
        )
        return Snapshot(
            identity=self._identity(),
            schedule=node.schedule,
            started_at=self.started_at,
            published_at=self.clock(),
            first_round_start=self.first_round_start,
            reports=tuple(self.reports),
            peers_connected=self.peers[0],
            peers_bound=self.peers[1],
            verdicts_received=self.received,
            totals=self.totals,
            resources=resources,
        )

    def _identity(self) -> Identity:
        node, neuron = self.node, self.neuron
        dht = node.swarm.dht
        return Identity(
            hotkey=node.hotkey,
            uid=neuron.uid if neuron else None,
            peer_id=dht.peer_id.to_base58() if dht is not None else "",
            run_id=node.run_id.hex(),
            run_name=node.spec.name,
            stake=neuron.stake if neuron else None,
            validator_permit=bool(neuron and neuron.validator_permit),
        )

    async def refresh(self) -> None:
        """The reads that may wait on another process: our neuron, the peer counts, others' verdicts about us."""
        node = self.node
        try:
            self.neuron = await asyncio.to_thread(node.chain.neuron, node.hotkey)
        except Exception as e:  # the chain is away and nothing was cached yet: keep the last answer
            log.debug("status: could not read our neuron: %r", e)
        swarm = node.swarm
        if swarm.p2p is not None and swarm.dht is not None:
            try:
                connected = len(await swarm.p2p.list_peers())
                bound = len([p for p in await swarm.bindings.bound_peers() if p != swarm.peer_id])
                self.peers = (connected, bound)
            except Exception as e:
                log.debug("status: could not count peers: %r", e)
        scores = getattr(node, "scores", None)
        if scores is not None:
            self._count_received(scores.received(node.hotkey))

    def _count_received(self, found: list[tuple[int, str, str]]) -> None:
        fresh = [(r, v, x) for r, v, x in found if (r, v) not in self._received_seen]
        if not fresh:
            return
        counts = dict(self.totals.verdicts_received)
        for r, v, x in fresh:
            self._received_seen.add((r, v))
            counts[x] = counts.get(x, 0) + 1
        if self.reports:  # forget keys of rounds the scoreboard has forgotten too
            oldest = self.reports[0]["round"] - REPORTS_KEPT
            self._received_seen = {k for k in self._received_seen if k[0] >= oldest}
        self.totals = replace(self.totals, verdicts_received=counts)
        self.received = tuple(sorted(found))[-REPORTS_KEPT:]

    async def watch(self) -> None:
        """Publish every second, and refresh the slow reads every few; until cancelled."""
        tick = 0
        while True:
            if tick % SLOW_EVERY == 0:
                await self.refresh()
            tick += 1
            try:
                self.publish()
            except Exception:  # the view must never take the node down
                log.exception("status: could not publish a snapshot")
            await asyncio.sleep(PUBLISH_SECONDS)


def _gpu_bytes(device) -> int | None:
    if getattr(device, "type", None) != "cuda":
        return None
    import torch

    return int(torch.cuda.memory_allocated(device))


def _mtime(path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
