"""The outer optimizer: SGD, optionally with (Nesterov) momentum, on the aggregated pseudo-gradient.

A run's default is plain SGD with lr 1 and momentum 0 ([outer] in the run spec):
with sparse codecs the error-feedback residual already plays the momentum's
part (SparseLoCo). The class defaults are DiLoCo's Nesterov recipe, which the
compression benchmark compares against.

The swarm's shared state is the pair (θ, momentum), both flat float32 CPU
vectors, so that every node holds and hashes exactly the same bytes.

The outer step of round r takes the lr ``lr * plan.outer_factor(r)``: the run's
learning-rate plan (protocol/plan.py), a function of the round alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from protocol.plan import PlanSpec

if TYPE_CHECKING:
    from node.config import RunSpec


@dataclass
class OuterState:
    theta: torch.Tensor  # flat float32, CPU
    momentum: torch.Tensor  # flat float32, CPU

    @classmethod
    def fresh(cls, theta: torch.Tensor) -> OuterState:
        theta = theta.detach().to("cpu", torch.float32).contiguous().clone()
        return cls(theta=theta, momentum=torch.zeros_like(theta))

    def state_hash(self) -> bytes:
        """sha256 over numel and the raw little-endian bytes of θ then momentum."""
        h = hashlib.sha256()
        h.update(b"gradswarm/state/v1")
        h.update(self.theta.numel().to_bytes(8, "little"))
        for tensor in (self.theta, self.momentum):
            h.update(tensor.contiguous().numpy().astype("<f4", copy=False).tobytes())
        return h.digest()

    def clone(self) -> OuterState:
        return OuterState(self.theta.clone(), self.momentum.clone())


@dataclass(frozen=True)
class OuterOptimizer:
    lr: float = 0.7
    momentum: float = 0.9
    nesterov: bool = True
    plan: PlanSpec = field(default_factory=PlanSpec)  # the run's plan: no plan, the peak lr every round

    @classmethod
    def from_spec(cls, spec: RunSpec) -> OuterOptimizer:
        """The run's outer optimizer: [outer] and the [plan]'s outer curve (every node of a run uses the same one)."""
        return cls(lr=spec.outer.lr, momentum=spec.outer.momentum, nesterov=spec.outer.nesterov, plan=spec.plan)

    def lr_at(self, round_: int) -> float:
        """The lr of round `round_`'s outer step: the same number on every node, verifier and auditor."""
        return self.lr * self.plan.outer_factor(round_)

    def step(self, state: OuterState, pseudo_gradient: torch.Tensor, round_: int | None = None) -> None:
        """m <- mu m + g;  θ <- θ - lr (g + mu m)  (Nesterov) or θ - lr m, with round `round_`'s lr
        (None: the peak lr, for callers outside a run's rounds such as the benchmarks)."""
        lr = self.lr if round_ is None else self.lr_at(round_)
        g = pseudo_gradient.to("cpu", torch.float32)
        state.momentum.mul_(self.momentum).add_(g)
        if self.nesterov:
            update = g.add(state.momentum, alpha=self.momentum)
        else:
            update = state.momentum
        state.theta.sub_(update, alpha=lr)
