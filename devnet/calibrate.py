"""Fitting the demo's rounds to this machine: how many inner steps fill the train window.

A real run fixes H and the round length in its spec, for the hardware it admits.
The demo runs wherever it is started, with every node a process on the same
cores, so it times the preset's inner step here, alone, and sizes H so that the
steps of N contending nodes fill FILL of the train window. Too few steps leave
the cores idle; too many are cut at the deadline, and a much cut trajectory reads
as a short one to the verifier (docs/DESIGN.md §7). The same timing is the
yardstick for the swarm's tokens per second: one process training alone.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from node.config import RunSpec
from node.trainer.inner import InnerTrainer
from node.trainer.model import node_model

# H is sized to overfill the train window slightly: a round's last few steps are cut at the deadline
# rather than the cores left idle when the machine runs a little faster than timed. Cut steps read as
# a slightly shorter trajectory, which the verifier's allowances absorb (docs/DESIGN.md §7).
FILL = 1.05
# Verification beside training, the DHT and p2pd share the cores too, and more so with more nodes:
# each validator screens every node's contribution. Measured (docs/DESIGN.md §7): x1.3 at 3 nodes,
# x2.1 at 9 (4 validators, 5 cheaters).
OVERHEAD_PER_PROCESS = 0.1
EPOCHS_PER_ROUND = 1.25  # windows drawn per token of the round's pages: more steps get more pages, not more passes
TIMED_STEPS = 8


@dataclass(frozen=True)
class Calibration:
    step_seconds_alone: float  # one inner step of the preset, one process, one thread
    processes: int  # nodes training at once
    cores: int

    @property
    def step_seconds(self) -> float:
        """An inner step when every node trains at once (each node trains on one thread)."""
        return self.step_seconds_alone * max(1.0, self.processes / self.cores) * self.overhead

    @property
    def overhead(self) -> float:
        return 1.0 + OVERHEAD_PER_PROCESS * self.processes

    def tokens_per_second_alone(self, spec: RunSpec) -> float:
        return spec.train.batch_size * spec.train.seq_len / self.step_seconds_alone


def time_inner_step(spec: RunSpec) -> float:
    """Seconds per inner step of `spec`'s model and batch, on one CPU thread, after two warm-up steps
    (the fastest of three timings)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = node_model(spec.model.preset, spec.model.seed, torch.device("cpu"), "off", spec.model.vocab_size)
        trainer = InnerTrainer.from_spec(model, spec.train, torch.device("cpu"))
        vocab = model.config.vocab_size
        rng = np.random.default_rng(0)
        pages = [rng.integers(0, vocab, spec.data.page_tokens, dtype=np.int64) for _ in range(4)]
        trainer.train(pages, steps=2, seed=0)
        times = []
        for seed in range(1, 4):  # the fastest of three: a stall of the machine is not the step's cost
            started = time.perf_counter()
            trainer.train(pages, steps=TIMED_STEPS, seed=seed)
            times.append((time.perf_counter() - started) / TIMED_STEPS)
        return min(times)
    finally:
        torch.set_num_threads(threads)


def calibrate(spec: RunSpec, processes: int) -> Calibration:
    return Calibration(time_inner_step(spec), processes, len(os.sched_getaffinity(0)))


def fit_steps(spec: RunSpec, train_seconds: float, calibration: Calibration) -> RunSpec:
    """`spec` with as many inner steps as fill `train_seconds`, and pages enough for them."""
    steps = max(1, int(FILL * train_seconds / calibration.step_seconds))
    t, data = spec.train, spec.data
    pages = max(data.pages_per_round, math.ceil(steps * t.batch_size * t.seq_len / (EPOCHS_PER_ROUND * data.page_tokens)))
    return replace(spec, train=replace(t, inner_steps=steps), data=replace(data, pages_per_round=pages))
