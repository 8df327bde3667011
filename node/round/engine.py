"""One round, top to bottom: train, publish, collect, manifest, apply or sync, verify, finish.

Each phase lives in its own module of this package. The node starts round r+1
when its window opens, whether or not round r is over (node/service.py): with
overlap, round r's exchange (collect to finish) runs while round r+1 trains.
So every phase of round r works from states it names by round, `source` (the
state it trains from, θ_{r-1} with overlap) and `base` (θ_r, which the manifest
applies to), and from round r's own records, never from "whatever the node
holds now". Only training takes turns, under `node.training`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from node.outer.head_start import Head
from node.round import finish
from node.round.manifest import Signed
from node.round.publish import Announcement, announce, own_head, prune_payload_files, publish
from node.round.report import RoundReport
from node.round.states import KEPT_ROUNDS, Base
from node.round.train import Work
from protocol.messages import RoundManifest
from protocol.schedule import Deadlines

if TYPE_CHECKING:
    from node.service import SwarmNode

log = logging.getLogger(__name__)

MIN_TRAIN_SHARE = 0.9  # of the train window: a node that cannot train that much sits the round out...
TRAIN_MARGIN = 1.5  # ...unless its last train phase, this many times over, still fits before the deadline


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_round(node: SwarmNode, r: int) -> None:
    d = node.schedule.deadlines(r)
    await sleep_until(d.start)
    await node.presence.bind()
    report = RoundReport(round=r, hotkey=node.hotkey, t_start=time.time())
    source = await node.states.wait_for(node.schedule.trained_from(r), until=latest_start(d, node.worker.phase_seconds))
    head = own_head(node.pool, r - 1, node.hotkey) if source is not None and source.round == r - 1 else None

    async with node.training:  # one round trains at a time: one that overran holds the next one up
        work = await train(node, r, source, head, d, report)
    if work is not None and source is not None and time.time() < work.publish_until:
        meta = Announcement(source, head.digest if head else b"", node.spec.codec.name, work.first_losses)
        await publish(node.board, node.pool, node.files.payloads, r, work.payload, meta)
    base = await node.states.wait_for(r, until=d.collect_end)  # θ_r: with overlap, round r-1's exchange settles it meanwhile
    settled = await node.collector.until_manifest(r, base, d)
    manifest = await apply_or_sync(node, r, base, settled, d, report)
    if node.states.round == r + 1:
        await announce(node.board, node.states.current)
    if source is not None and node.config.verify_samples and manifest is not None:
        node.verification.start(r, source, manifest, {n.hotkey for n in node.chain.neurons() if n.validator_permit})
    await finish_round(node, r, report, manifest)


def latest_start(d: Deadlines, phase_seconds: float | None = None) -> float:
    """Training that starts later than this would be cut short by the deadline, which reads as a short
    trajectory. Once the node knows how long its train phase takes (`phase_seconds`), it starts as late
    as that still fits: under the live fuzzer, nodes whose round began 3 s late sat out whole rounds
    whose 20 steps took 6 s of a 12 s window."""
    by_share = d.start + (1 - MIN_TRAIN_SHARE) * (d.train_end - d.start)
    if phase_seconds is None:
        return by_share
    return max(by_share, d.train_end - TRAIN_MARGIN * phase_seconds)


async def train(node: SwarmNode, r: int, source: Base | None, head: Head | None, d: Deadlines, report: RoundReport) -> Work | None:
    if source is None:
        log.warning("round %d: not training (θ_%d not held in time)", r, node.schedule.trained_from(r))
        return None
    if time.time() > latest_start(d, node.worker.phase_seconds):
        log.warning("round %d: not training (too late to train a whole round)", r)
        return None
    work = await node.worker.work(r, source, d, head)
    if work is None:
        log.warning("round %d: not training (too late)", r)
    elif work.loss is not None:
        report.train_seconds, report.train_loss, report.inner_steps = work.seconds, work.loss, work.steps
        report.inner_seconds = work.inner_seconds
        report.compute_utilization = round(work.inner_seconds / node.schedule.round_seconds, 4)
        report.tokens_trained = work.tokens
        report.payload_bytes = len(work.payload)
    if (r + 1) % node.config.checkpoint_every == 0:  # under the training lock: nothing trains meanwhile
        await asyncio.to_thread(finish.save_private, node.files, node.feedback, node.trainer, node.ranked)
    return work


async def apply_or_sync(
    node: SwarmNode, r: int, base: Base | None, settled: RoundManifest | Signed | None, d: Deadlines, report: RoundReport
) -> RoundManifest | None:
    """θ_{r+1}: signed here, applied from the manifest, unchanged without one, or synced from a holder."""
    states = node.states
    if isinstance(settled, Signed):
        states.adopt(settled.state, r + 1)
        manifest: RoundManifest | None = settled.manifest
    else:
        manifest = settled
        if manifest is None:
            if states.round == r:  # no manifest: θ_{r+1} = θ_r
                states.adopt(states.state, r + 1)
        elif base is not None and manifest.base_state_hash == base.hash and states.round == r:
            result = await node.apply(manifest, base)
            if result is not None:
                states.adopt(result, r + 1)
    if manifest is not None:
        report.manifest_entries = len(manifest.entries)
        report.manifest_hotkeys = [e.hotkey for e in manifest.entries]
        report.manifest_signer = manifest.hotkey
        if states.hash != manifest.result_state_hash:  # round r+1's exchange needs θ_{r+1} by its collect_end
            report.resynced = await node.sync(manifest, deadline=node.schedule.deadlines(r + 1).collect_end)
    return manifest


async def finish_round(node: SwarmNode, r: int, report: RoundReport, manifest: RoundManifest | None) -> None:
    states = node.states
    if node.config.evaluate and states.round == r + 1:
        report.eval_loss = await asyncio.to_thread(node.evaluate)
    if node.ranked is not None:  # rank 0's heartbeat to the other ranks, also in rounds this node does not train
        await asyncio.to_thread(node.ranked.load_everywhere, states.state.theta)
    report.state_hash = states.hash.hex()
    report.in_sync = manifest is None or states.hash == manifest.result_state_hash
    # since the last report, not since this round began: with overlap two rounds' windows overlap,
    # and a byte would be counted in both
    served = dict(node.swarm.bytes_served)
    report.upload_payload_bytes = served["payload"] - node.served_at_report["payload"]
    report.upload_state_bytes = served["state"] - node.served_at_report["state"]
    node.served_at_report = served
    report.verdicts, report.verify_seconds, units = node.verification.take()
    t = node.spec.train
    report.verify_share = round(units / (3 * t.inner_steps * t.batch_size), 4)  # a training window: forward and backward
    await finish.report_defences(report, node.swarm, node.board.unregistered, node.memory)
    if (r + 1) % node.config.weights_every == 0:
        await asyncio.to_thread(finish.set_weights, node.chain, node.keypair, node.scores)
    if states.round == r + 1 and (r + 1) % node.config.checkpoint_every == 0:
        await asyncio.to_thread(finish.save_state, node.files, states, manifest)
    report.t_end = time.time()
    log.info("round %d: %s", r, report.to_json())
    report.append_to(node.files.rounds)
    node.status.round_finished(report)
    node.forget_before(r - KEPT_ROUNDS)
    await node.verification.forget(r)
    prune_payload_files(node.files.payloads, r - KEPT_ROUNDS)
