"""One round, top to bottom: train, publish, collect, manifest, apply or sync, verify, finish.

Each phase lives in its own module of this package. Every phase of round r
works from `base`, the state the round started from, and from round r's own
records, never from "whatever the node holds now": that is what lets round r's
exchange and verification run while round r+1 trains. Verification already
does (a background task); the rest still runs in sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from node.round import finish
from node.round.manifest import Signed
from node.round.publish import announce, prune_payload_files, publish
from node.round.report import RoundReport
from node.round.states import KEPT_ROUNDS, Base
from node.round.train import Work
from protocol.messages import RoundManifest
from protocol.schedule import Deadlines

if TYPE_CHECKING:
    from node.service import SwarmNode

log = logging.getLogger(__name__)


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_round(node: SwarmNode, r: int) -> None:
    d = node.schedule.deadlines(r)
    await sleep_until(d.start)
    await node.presence.bind()
    report = RoundReport(round=r, hotkey=node.hotkey, t_start=time.time())
    served_before = dict(node.swarm.bytes_served)
    base = node.states.current

    work = await train(node, r, base, d, report)
    if work is not None and time.time() < work.publish_until:
        await publish(node.board, node.pool, node.files.payloads, r, work.payload, base, node.spec.codec.name, work.first_losses)
    settled = await node.collector.until_manifest(r, base, d)
    manifest = await apply_or_sync(node, r, base, settled, d, report)
    if node.states.round == r + 1:
        await announce(node.board, node.states.current)
    if base.round == r and node.config.verify_samples and manifest is not None:
        node.verification.start(r, base, manifest, {n.hotkey for n in node.chain.neurons() if n.validator_permit})
    await finish_round(node, r, report, manifest, served_before)


async def train(node: SwarmNode, r: int, base: Base, d: Deadlines, report: RoundReport) -> Work | None:
    if base.round != r:
        log.warning("round %d: not training (state is for round %d)", r, base.round)
        return None
    work = await node.worker.work(r, base, d)
    if work is None:
        log.warning("round %d: not training (too late)", r)
    elif work.loss is not None:
        report.train_seconds, report.train_loss, report.inner_steps = work.seconds, work.loss, work.steps
        report.payload_bytes = len(work.payload)
    return work


async def apply_or_sync(
    node: SwarmNode, r: int, base: Base, settled: RoundManifest | Signed | None, d: Deadlines, report: RoundReport
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
        elif manifest.base_state_hash == base.hash and states.round == r:
            result = await node.apply(manifest, base)
            if result is not None:
                states.adopt(result, r + 1)
    if manifest is not None:
        report.manifest_entries = len(manifest.entries)
        report.manifest_hotkeys = [e.hotkey for e in manifest.entries]
        report.manifest_signer = manifest.hotkey
        if states.hash != manifest.result_state_hash:
            report.resynced = await node.sync(manifest, deadline=d.end + node.schedule.round_seconds / 2)
    return manifest


async def finish_round(node: SwarmNode, r: int, report: RoundReport, manifest: RoundManifest | None, served_before: dict) -> None:
    states = node.states
    if node.config.evaluate and states.round == r + 1:
        report.eval_loss = await asyncio.to_thread(node.evaluate)
    if node.ranked is not None:  # the outer update: every rank holds θ_{r+1}; also rank 0's heartbeat to them
        await asyncio.to_thread(node.ranked.load_everywhere, states.state.theta)
    report.state_hash = states.hash.hex()
    report.in_sync = manifest is None or states.hash == manifest.result_state_hash
    report.upload_payload_bytes = node.swarm.bytes_served["payload"] - served_before["payload"]
    report.upload_state_bytes = node.swarm.bytes_served["state"] - served_before["state"]
    report.verdicts, report.verify_seconds, units = node.verification.take()
    t = node.spec.train
    report.verify_share = round(units / (3 * t.inner_steps * t.batch_size), 4)  # a training window: forward and backward
    await finish.report_defences(report, node.swarm, node.board.unregistered, node.memory)
    if (r + 1) % node.config.weights_every == 0:
        await asyncio.to_thread(finish.set_weights, node.chain, node.keypair, node.scores)
    if states.round == r + 1 and (r + 1) % node.config.checkpoint_every == 0:
        await asyncio.to_thread(finish.save_local, node.files, states, node.feedback, node.trainer, node.ranked)
    report.t_end = time.time()
    log.info("round %d: %s", r, report.to_json())
    report.append_to(node.files.rounds)
    node.forget_before(r - KEPT_ROUNDS)
    prune_payload_files(node.files.payloads, r - KEPT_ROUNDS)
