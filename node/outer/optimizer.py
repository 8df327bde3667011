"""The outer optimizer: SGD, optionally with (Nesterov) momentum, on the aggregated pseudo-gradient.

A run's default is plain SGD with lr 1 and momentum 0 ([outer] in the run spec):
with sparse codecs the error-feedback residual already plays the momentum's
part (SparseLoCo). The class defaults are DiLoCo's Nesterov recipe, which the
compression benchmark compares against.

The swarm's shared state is the pair (θ, momentum), both flat float32 CPU
vectors, so that every node holds and hashes exactly the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


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

    def step(self, state: OuterState, pseudo_gradient: torch.Tensor) -> None:
        """m <- mu m + g;  θ <- θ - lr (g + mu m)  (Nesterov) or θ - lr m."""
        g = pseudo_gradient.to("cpu", torch.float32)
        state.momentum.mul_(self.momentum).add_(g)
        if self.nesterov:
            update = g.add(state.momentum, alpha=self.momentum)
        else:
            update = state.momentum
        state.theta.sub_(update, alpha=self.lr)
