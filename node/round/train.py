"""Train: H inner steps from θ_r on this node's pages, compressed into the round's payload.

The Worker is the honest node's work. Its hooks (which pages, which start
state, which update) are the only places a node's own choices enter a round,
so the devnet's cheaters are Workers with one hook changed, and the product's
round never names them.

The run's plan (protocol/plan.py) enters by the round number alone: round r
trains at the inner factor of r, and its head start takes round r-1's outer lr
(node/outer/head_start.py), so a restarted node trains as if it never stopped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from node.config import RunSpec
from node.data.corpus import Corpus
from node.outer.head_start import Head, head_lr, head_start
from node.outer.optimizer import OuterOptimizer, OuterState
from node.round.states import Base
from node.trainer import params
from node.trainer.distributed import RankedTrainer
from node.trainer.inner import InnerTrainer, first_batch, row_losses
from protocol.assignment import assign_pages, train_seed
from protocol.compression import Codec, ErrorFeedback
from protocol.schedule import Deadlines

if TYPE_CHECKING:
    from node.service import SwarmNode


@dataclass(frozen=True)
class Work:
    """What the train phase hands to publish."""

    payload: bytes
    publish_until: float  # announcements first seen after the reveal time are ignored: publishing later is pointless
    loss: float | None = None  # None when the payload was not trained here
    steps: int = 0
    seconds: float = 0.0  # the whole phase: first-batch losses, inner steps, compression
    inner_seconds: float = 0.0  # in the inner steps alone
    tokens: int = 0
    first_losses: tuple[float, ...] = ()  # each row's loss in the first inner step, at θ_r


@dataclass
class Worker:
    run_id: bytes
    hotkey: str
    spec: RunSpec
    corpus: Corpus
    excluded: frozenset[int]  # the eval pages: nobody trains on them
    model: torch.nn.Module
    trainer: InnerTrainer
    ranked: RankedTrainer | None  # torchrun: the other ranks train with us
    device: torch.device
    feedback: ErrorFeedback
    codec: Codec
    phase_seconds: float | None = None  # how long the last train phase took (None: none yet)

    @classmethod
    def build(cls, node: SwarmNode) -> Worker:
        """The worker of a set-up node (a cheater's `build` may take more of the node's parts)."""
        return cls(
            node.run_id,
            node.hotkey,
            node.spec,
            node.corpus,
            node.excluded,
            node.model,
            node.trainer,
            node.ranked,
            node.device,
            node.feedback,
            node.codec,
        )

    async def work(self, r: int, base: Base, deadlines: Deadlines, head: Head | None = None) -> Work | None:
        """Train round r from `base` (stepped first with `head`, the node's own last payload) until
        the train deadline; None when it is too late to start."""
        if time.time() >= deadlines.train_end:
            return None
        started = time.time()
        start = base.state
        if head is not None:
            lr = head_lr(OuterOptimizer.from_spec(self.spec), r)
            start = OuterState(head_start(base.state.theta, head.vector, lr), base.state.momentum)
        loss, payload, first = await asyncio.to_thread(self.train_and_compress, r, start, deadlines.train_end)
        steps, trainer = self.trainer.last_steps, self.trainer
        self.phase_seconds = time.time() - started
        return Work(
            payload,
            deadlines.reveal,
            loss,
            steps,
            round(time.time() - started, 3),
            round(trainer.last_seconds, 3),
            steps * trainer.batch_size * trainer.seq_len,
            first,
        )

    def train_and_compress(self, r: int, base: OuterState, deadline: float) -> tuple[float, bytes, tuple[float, ...]]:
        """(mean training loss, payload, the first batch's row losses)."""
        source = self.start_state(base)
        theta = source.theta.to(self.device)
        pages = assign_pages(
            self.run_id, r, self.pages_of(self.hotkey), self.corpus.num_pages, self.spec.data.pages_per_round, self.excluded
        )
        seed = train_seed(self.run_id, r, self.hotkey)
        tokens = self.corpus.pages(pages)
        train, factor = self.spec.train, self.spec.plan.inner_factor(r)  # the round's alone: no count of rounds run here
        params.load_flat(self.model, theta)
        first = tuple(row_losses(self.model, first_batch(tokens, train.batch_size, train.seq_len, seed), self.device))
        if self.ranked is None:
            loss, delta = local_delta(self.model, self.trainer, theta, tokens, self.steps(), seed, deadline, factor)
        else:  # every rank trains on its rows of the same batches; rank 0 gets the result
            loss, trained = self.ranked.train(source.theta, pages, seed, self.steps(), deadline, factor)
            delta = theta - trained.to(self.device)
        return loss, self.feedback.step(self.update(delta, r), self.codec, beta=self.spec.codec.error_feedback_beta), first

    # The honest choices; a cheater changes one of them.

    def pages_of(self, hotkey: str) -> str:
        """Whose assigned pages this node trains on."""
        return hotkey

    def start_state(self, base: OuterState) -> OuterState:
        """The state training starts from."""
        return base

    def steps(self) -> int:
        """How many inner steps this node takes (the deadline may cut them short)."""
        return self.spec.train.inner_steps

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        """The pseudo-gradient that goes into the payload."""
        return delta


def local_delta(
    model: torch.nn.Module,
    trainer: InnerTrainer,
    theta: torch.Tensor,
    pages: list,
    steps: int,
    seed: int,
    deadline: float | None = None,
    lr_factor: float = 1.0,
) -> tuple[float, torch.Tensor]:
    """Load θ into `model`, run the inner loop at `lr_factor` of the peak lr, and return (mean loss, Δ = θ - θ_local)."""
    params.load_flat(model, theta)
    loss = trainer.train(pages, steps=steps, seed=seed, deadline=deadline, lr_factor=lr_factor)
    return loss, theta - params.flatten(model)
