"""The head start: with overlap, the outer step a node takes on its own last payload before training.

Round r trains from θ_{r-1}, while round r-1's contributions are still on their
way (protocol/schedule.py). Training from θ_{r-1} as it is would compute nearly
the update that round r-1 is about to apply, and apply it a second time. So a
node first steps θ_{r-1} with its own round r-1 payload, the best guess of that
update it holds, and trains from there (the "eager" outer step of Kale et al.,
arXiv 2502.12996, taken with the published payload so that anyone can rebuild
the start). Measured against the sequential round and a plain one-round delay
in benchmarks/efficiency.py (docs/DESIGN.md §3).

The step stands in for round r-1's outer step, so it takes round r-1's outer
lr under the run's plan (`head_lr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from node.outer.optimizer import OuterOptimizer


@dataclass(frozen=True)
class Head:
    """A node's own payload of the round before, as published (digest), sent (bytes) and decoded."""

    digest: bytes
    payload: bytes
    vector: torch.Tensor


def head_start(theta: torch.Tensor, own_update: torch.Tensor, outer_lr: float) -> torch.Tensor:
    """The state a node trains from: θ − lr · its decoded payload, in float32 on the CPU, so the
    node, every verifier and an auditor compute the same bits."""
    return theta.to("cpu", torch.float32) - outer_lr * own_update.to("cpu", torch.float32)


def head_lr(outer: OuterOptimizer, round_: int) -> float:
    """The lr of round `round_`'s head start: the payload is the guess of round r-1's outer step,
    so it is stepped with round r-1's lr (a head exists from round 1 on; round 0 reads round 0's)."""
    return outer.lr_at(max(0, round_ - 1))
