"""The run's learning-rate plan: a factor on the inner and the outer learning rate, per round.

A factor is a pure function of the round number and the spec, so every node,
verifier and auditor computes the same one, and a node that restarts or joins
late picks the plan up where the swarm is (nothing about it is saved). Two
shapes, both with a linear warmup over the first rounds:

- ``cosine``: half a cosine from 1 down to ``min_ratio`` at the last planned round;
- ``wsd`` (warmup, stable, decay): 1 until the last ``decay_rounds``, then linear to
  ``min_ratio``; the stable phase can be extended without restarting the decay's
  maths, which is why long open-ended runs use it.

Past the planned ``rounds`` the factor stays at ``min_ratio``: a swarm that keeps
going keeps training at the floor instead of failing. ``rounds = 0`` means no plan
(factor 1 throughout), today's behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SHAPES = ("constant", "cosine", "wsd")


@dataclass(frozen=True)
class LrCurve:
    shape: str = "constant"
    warmup_rounds: int = 0
    min_ratio: float = 0.1  # the factor at the end of the plan
    decay_rounds: int = 0  # wsd only: rounds of linear decay at the end of the plan

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {self.shape!r}")
        if self.warmup_rounds < 0 or self.decay_rounds < 0:
            raise ValueError("warmup_rounds and decay_rounds must not be negative")
        if not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError("min_ratio must be in [0, 1]")

    def factor(self, round_: int, rounds: int) -> float:
        """The multiplier of the peak learning rate in round ``round_`` (0-based) of a ``rounds``-round plan."""
        if rounds <= 0 or (self.shape == "constant" and self.warmup_rounds == 0):
            return 1.0
        if round_ < self.warmup_rounds:
            return (round_ + 1) / (self.warmup_rounds + 1)
        if self.shape == "constant":
            return 1.0
        if round_ >= rounds - 1:
            return self.min_ratio
        if self.shape == "cosine":
            span = max(1, rounds - 1 - self.warmup_rounds)
            progress = (round_ - self.warmup_rounds) / span
            return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        decay_start = max(self.warmup_rounds, rounds - 1 - self.decay_rounds)
        if round_ < decay_start:
            return 1.0
        progress = (round_ - decay_start) / max(1, rounds - 1 - decay_start)
        return 1.0 - (1.0 - self.min_ratio) * progress


@dataclass(frozen=True)
class PlanSpec:
    """``[plan]`` of a run spec: the planned length and one curve per optimizer."""

    rounds: int = 0  # 0: no plan, every factor is 1
    inner: LrCurve = field(default_factory=LrCurve)
    outer: LrCurve = field(default_factory=LrCurve)

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError("rounds must not be negative")

    def inner_factor(self, round_: int) -> float:
        return self.inner.factor(round_, self.rounds)

    def outer_factor(self, round_: int) -> float:
        return self.outer.factor(round_, self.rounds)
