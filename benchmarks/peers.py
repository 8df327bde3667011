"""A member of a benchmark's in-process swarm, set up and trained by the node's own code.

The benchmarks simulate a swarm in one process. What each member does in a
round has to be what a node does (node/round/train.py: `local_delta` with the
node's seed, then the error-feedback step into a payload), not a copy of it:
a copy drifts from the node, and then the figures describe the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from node.config import TrainSpec
from node.round.train import local_delta
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from protocol.assignment import train_seed
from protocol.compression import ErrorFeedback


@dataclass
class Peer:
    """One node's training state: its model, its inner optimizer (whose AdamW state persists across
    rounds, as a node's does) and its error-feedback residual."""

    hotkey: str
    model: torch.nn.Module
    trainer: InnerTrainer
    feedback: ErrorFeedback = field(default_factory=ErrorFeedback)

    @classmethod
    def build(cls, hotkey: str, preset: str, seed: int, train: TrainSpec) -> Peer:
        """As node/service.py sets a node up: the run's model and the run spec's inner optimizer, on CPU."""
        model = build_model(preset, seed)
        return cls(hotkey, model, InnerTrainer.from_spec(model, train, "cpu"))

    def delta(self, run_id: bytes, round_: int, theta: torch.Tensor, pages: Sequence[np.ndarray], steps: int) -> torch.Tensor:
        """Δ = θ − θ_local after `steps` inner steps from θ on `pages`, drawing batches with the seed
        a node of this hotkey uses in this round."""
        _, delta = local_delta(self.model, self.trainer, theta, list(pages), steps, train_seed(run_id, round_, self.hotkey))
        return delta
