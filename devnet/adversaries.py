"""Cheating nodes for `gradswarm demo --adversaries`: what the verifier must catch.

Each kind is the honest Worker (node/round/train.py) with one step changed,
the way a cheater would change it: which pages it trains on, which state it
starts from, how many steps it takes, what it publishes and when. The product's config and round never name
them; only the devnet starts a node with one (devnet/cheater.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from node.outer.contributions import ContributionPool
from node.outer.head_start import Head
from node.outer.optimizer import OuterState
from node.round.states import Base
from node.round.train import Work, Worker
from node.trainer import params
from node.trainer.inner import first_batch, row_losses
from protocol.assignment import assign_pages, train_seed
from protocol.schedule import Deadlines

if TYPE_CHECKING:
    from node.service import SwarmNode

POLL_SECONDS = 0.5


class WrongPages(Worker):
    """Trains, but on the pages of an identity that is not its own."""

    def pages_of(self, hotkey: str) -> str:
        return hotkey + "/elsewhere"


class Noise(Worker):
    """Publishes random values of the update's norm instead of the update."""

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(r)
        noise = torch.randn(delta.numel(), generator=g).to(delta.device)
        return noise * (delta.norm() / noise.norm())


class Scaled(Worker):
    """Publishes its update multiplied by 100."""

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        return delta * 100.0


class Negated(Worker):
    """Publishes the opposite of its update."""

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        return -delta


class Shrunk(Worker):
    """Publishes its update multiplied by 0.05."""

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        return delta * 0.05


class FewSteps(Worker):
    """Trains a tenth of the assigned inner steps."""

    def steps(self) -> int:
        return max(1, self.spec.train.inner_steps // 10)


class HalfSteps(Worker):
    """Trains half the assigned inner steps and doubles the update, so that its norm looks normal."""

    def steps(self) -> int:
        return max(1, self.spec.train.inner_steps // 2)

    def update(self, delta: torch.Tensor, r: int) -> torch.Tensor:
        return delta * 2.0


@dataclass
class Late(Worker):
    """One round late: trains every round, but publishes in round r what it trained in round r-1
    (nothing in its first round)."""

    previous: Work | None = None

    async def work(self, r: int, base: Base, deadlines: Deadlines, head: Head | None = None) -> Work | None:
        current = await super().work(r, base, deadlines, head)
        previous, self.previous = self.previous, current
        return None if previous is None else replace(previous, publish_until=deadlines.reveal)


@dataclass
class Stale(Worker):
    """Trains from the previous round's state and claims the current one."""

    previous: OuterState | None = None

    def start_state(self, base: OuterState) -> OuterState:
        source, self.previous = self.previous or base, base
        return source


def committed_losses(worker: Worker, r: int, base: OuterState) -> tuple[float, ...]:
    """The first-batch losses an honest node of this hotkey would commit to: one forward pass."""
    train = worker.spec.train
    pages = assign_pages(worker.run_id, r, worker.hotkey, worker.corpus.num_pages, worker.spec.data.pages_per_round, worker.excluded)
    batch = first_batch(worker.corpus.pages(pages), train.batch_size, train.seq_len, train_seed(worker.run_id, r, worker.hotkey))
    params.load_flat(worker.model, base.theta.to(worker.device))
    return tuple(row_losses(worker.model, batch, worker.device))


class ForgedWrongPages(WrongPages):
    """Trains on another identity's pages, but commits to the first-batch losses of its own."""

    def train_and_compress(self, r: int, base: OuterState, deadline: float) -> tuple[float, bytes, tuple[float, ...]]:
        loss, payload, _ = super().train_and_compress(r, base, deadline)
        return loss, payload, committed_losses(self, r, base)


class ForgedStale(Stale):
    """Trains from the previous round's state, but commits to first-batch losses computed at θ_r."""

    def train_and_compress(self, r: int, base: OuterState, deadline: float) -> tuple[float, bytes, tuple[float, ...]]:
        loss, payload, _ = super().train_and_compress(r, base, deadline)
        return loss, payload, committed_losses(self, r, base)


@dataclass
class Copy(Worker):
    """Trains nothing: republishes the first other payload it can get, as its own."""

    pool: ContributionPool | None = field(default=None)

    @classmethod
    def build(cls, node: SwarmNode) -> Worker:
        worker = super().build(node)
        worker.pool = node.pool  # type: ignore[attr-defined]
        return worker

    async def work(self, r: int, base: Base, deadlines: Deadlines, head: Head | None = None) -> Work | None:
        assert self.pool is not None
        while time.time() < deadlines.collect_end:
            collected = await self.pool.poll(r)
            for hotkey in sorted(collected.vectors):
                if hotkey != self.hotkey and collected.metas[hotkey].digest in self.pool.payloads:
                    return Work(self.pool.payloads[collected.metas[hotkey].digest][1], publish_until=float("inf"))
            await asyncio.sleep(POLL_SECONDS)
        return None


WORKERS: dict[str, type[Worker]] = {
    "copy": Copy,
    "noise": Noise,
    "wrong-pages": WrongPages,
    "scaled": Scaled,
    "stale": Stale,
    "few-steps": FewSteps,
    "half-steps": HalfSteps,
    "negated": Negated,
    "late": Late,
    "shrunk": Shrunk,
    "forged-wrong-pages": ForgedWrongPages,
    "forged-stale": ForgedStale,
}
KINDS = tuple(WORKERS)


def check_kind(kind: str) -> str:
    if kind not in WORKERS:
        raise ValueError(f"unknown adversary kind {kind!r}; choose from {', '.join(KINDS)}")
    return kind
