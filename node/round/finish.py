"""Finish: what a round leaves behind once θ_{r+1} is settled.

Validators put their scores on chain every few rounds; the node checkpoints
the state (the residual and the inner optimizer are saved by the train phase,
while nothing trains), so a restart resumes where it stopped; it measures,
reports and forgets what it no longer needs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from node.chain import ChainError, ChainView
from node.checkpoint.state import manifest_path, save_checkpoint, save_feedback, save_inner
from node.fsutil import atomic_write
from node.memory import PeakRss, release_free_heap
from node.round.report import RoundReport
from node.round.states import StateBook
from node.swarm.records import validator_rejections
from node.swarm.swarm import Swarm
from node.swarm.watch import dht_answer
from node.trainer.distributed import RankedTrainer
from node.trainer.inner import InnerTrainer
from node.verifier.scores import Scoreboard
from protocol import wire
from protocol.compression import ErrorFeedback
from protocol.messages import RoundManifest
from protocol.signing import Signer

log = logging.getLogger(__name__)


def set_weights(chain: ChainView, keypair: Signer, scores: Scoreboard) -> None:
    """Validators put their scores on chain; weights decide who is worth gathering run-wide."""
    neurons = {n.hotkey: n for n in chain.neurons()}
    me = neurons.get(keypair.ss58_address)
    if me is None or not me.validator_permit:
        return
    scored = [(neurons[h].uid, scores.score(h)) for h in neurons if scores.known(h)]
    if not any(w > 0 for _, w in scored):
        return
    try:
        chain.set_weights(keypair, [u for u, _ in scored], [w for _, w in scored])
    except ChainError as e:
        log.warning("could not set weights: %s", e)


@dataclass(frozen=True)
class LocalFiles:
    """Where a node keeps what lets a restart resume: θ, the residual, the inner optimizer."""

    data_dir: Path

    @property
    def state(self) -> Path:
        return self.data_dir / "state.safetensors"

    @property
    def feedback(self) -> Path:
        return self.data_dir / "error_feedback.safetensors"

    @property
    def inner(self) -> Path:
        return self.data_dir / "inner_optimizer.pt"

    @property
    def payloads(self) -> Path:
        return self.data_dir / "payloads"

    @property
    def rounds(self) -> Path:
        return self.data_dir / "rounds.jsonl"


def save_state(files: LocalFiles, states: StateBook, manifest: RoundManifest | None) -> None:
    """θ, and beside it the signed manifest whose result it is: what `gradswarm export` puts in the model card."""
    save_checkpoint(files.state, states.state, states.round)
    if manifest is not None and manifest.result_state_hash == states.hash:
        atomic_write(manifest_path(files.state), wire.encode(manifest))
    else:
        manifest_path(files.state).unlink(missing_ok=True)


def save_private(files: LocalFiles, feedback: ErrorFeedback, trainer: InnerTrainer, ranked: RankedTrainer | None) -> None:
    """The residual and the inner optimizer: only while nothing trains, or the file holds a half-made step."""
    save_feedback(files.feedback, feedback.state_dict())
    if ranked is None:  # under torchrun the moments live in the ranks (sharded with FSDP2): not saved yet
        save_inner(files.inner, trainer.state_dict())


async def report_defences(report: RoundReport, swarm: Swarm, unregistered: int, memory: PeakRss) -> None:
    """What the Sybil defences refused so far (cumulative), and this node's memory once the round's
    freed heap is handed back (the peak, sampled every second, still counts every transient)."""
    report.unregistered_records = unregistered
    report.refused_streams = swarm.refused_streams
    report.records_only_pushed = swarm.inbox.filled
    try:
        rejections = swarm.dht.run_coroutine(validator_rejections, return_future=True)
        report.dht_rejections = await dht_answer(rejections, "reading the DHT's refusals", None)
    except Exception as e:  # the DHT process is gone: the report goes out without it
        log.debug("could not read the DHT validator's counts: %r", e)
    await asyncio.to_thread(release_free_heap)  # the round's buffers are gone: see node.memory
    report.rss_bytes = await asyncio.to_thread(memory.sample)
    report.peak_rss_bytes = memory.peak
