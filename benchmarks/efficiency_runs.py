"""The training runs benchmarks/efficiency.py compares, on one model, one corpus and one token budget.

Every run spends the same tokens: R rounds x P peers x H inner steps x B rows
x S tokens. The swarm runs are the node's own round in process
(benchmarks/compression_training.py): `assign_pages`, `local_delta` with the
node's `train_seed`, the error-feedback step into the codec's payload, its
decode, and `next_state` (robust mean and outer step). With `delay` 1 the
contributions of round r are trained from θ_{r-1} and applied to θ_r, as the
overlapped schedule does (protocol/schedule.py). The centralized run is one
AdamW with the swarm's global batch (P x B rows a step) on the same pages,
round by round: the union of the peers' assigned pages.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from benchmarks.compression_codecs import Entry, make_codec
from benchmarks.compression_training import Swarm, Task, send
from node.config import CodecSettings, OuterSpec
from node.data.corpus import Corpus
from node.outer.head_start import head_start
from node.outer.optimizer import OuterOptimizer
from node.trainer import params
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from protocol.assignment import assign_pages


@dataclass(frozen=True)
class Recipe:
    name: str
    codec: Entry | None  # None: the centralized run
    outer_lr: float = 1.0
    outer_momentum: float = 0.0
    delay: int = 0  # rounds between the state a contribution is trained from and the one it is applied to
    eager: float = 0.0  # with delay: each peer trains from θ_{r-1} - eager * lr * its own round r-1 vector (head start)


def swarm_recipe(delay: int = 1, outer_lr: float | None = None) -> Recipe:
    """The run spec's defaults: its codec, error feedback, outer step; overlapped unless `delay` is 0."""
    c, o = CodecSettings(), OuterSpec()
    entry = Entry(c.name, c.name, chunk=c.chunk, k=c.k, value_bits=c.value_bits, scale_group=c.scale_group, ef_beta=c.error_feedback_beta)
    name = "swarm" if delay else "swarm-sequential"
    return Recipe(name, entry, o.lr if outer_lr is None else outer_lr, o.momentum, delay, eager=1.0 if delay else 0.0)


DENSE_DILOCO = Recipe("dense-diloco", Entry("dense-fp32", "fp32"), outer_lr=0.7, outer_momentum=0.9)
CENTRALIZED = Recipe("centralized", None)


@dataclass
class Curve:
    """Held-out loss against tokens trained, and the wall seconds the run took on this machine."""

    recipe: str
    peers: int
    tokens: list[int]
    eval_loss: list[float]
    wall_seconds: float

    def tokens_to_reach(self, loss: float) -> float | None:
        """Tokens at which this curve first reaches `loss` (linear between evaluations); None if never."""
        if self.eval_loss[0] <= loss:
            return float(self.tokens[0])
        points = list(zip(self.tokens, self.eval_loss, strict=True))
        for (t0, l0), (t1, l1) in itertools.pairwise(points):
            if l1 <= loss:
                return t0 + (t1 - t0) * (l0 - loss) / (l0 - l1)
        return None


def round_tokens(task: Task) -> int:
    return task.peers * task.inner_steps * task.batch_size * task.seq_len


def run_swarm(recipe: Recipe, task: Task, corpus: Corpus) -> Curve:
    swarm = Swarm(task, corpus)
    codec = make_codec(recipe.codec)
    outer = OuterOptimizer(lr=recipe.outer_lr, momentum=recipe.outer_momentum, nesterov=True)
    history = [swarm.state]
    last: list[torch.Tensor] = []  # each peer's vector of the round before  # θ_0, θ_1, ...: round r trains from θ_{r - delay}
    tokens, losses = [0], [swarm.eval()]
    started = time.perf_counter()
    for r in range(task.rounds):
        source = history[max(0, r - recipe.delay)]
        vectors = []
        for p, peer in enumerate(swarm.peers):
            pages = assign_pages(task.run_id, r, peer.hotkey, corpus.num_pages, task.pages_per_round, swarm.excluded)
            start = source.theta
            if recipe.eager and last:  # the node's head start (node/outer/head_start.py) when eager is 1
                start = head_start(start, recipe.eager * last[p], recipe.outer_lr)
            delta = peer.delta(task.run_id, r, start, corpus.pages(pages), task.inner_steps)
            vectors.append(send(peer.feedback, delta, codec, recipe.codec.beta)[0])
        last = vectors
        swarm.apply(outer, vectors)  # onto θ_r, the newest state
        history.append(swarm.state)
        tokens.append(tokens[-1] + round_tokens(task))
        losses.append(swarm.eval())
        report(recipe.name, task.peers, r, losses[-1], started)
    return Curve(recipe.name, task.peers, tokens, losses, time.perf_counter() - started)


def run_centralized(task: Task, corpus: Corpus, evals_per_round: int = 4) -> Curve:
    """AdamW with the global batch on each round's pages, evaluated `evals_per_round` times a round, so
    that `tokens_to_reach` interpolates over short spans."""
    swarm = Swarm(task, corpus)  # for its eval pages and peers' hotkeys
    model = build_model(task.preset, task.seed)
    train = task.train_spec()
    global_batch = type(train)(**{**train.__dict__, "batch_size": task.peers * task.batch_size})
    trainer = InnerTrainer.from_spec(model, global_batch, "cpu")
    tokens, losses = [0], [swarm.eval()]
    step_tokens = global_batch.batch_size * task.seq_len
    started = time.perf_counter()
    for r in range(task.rounds):
        pages = [
            page
            for peer in swarm.peers
            for page in assign_pages(task.run_id, r, peer.hotkey, corpus.num_pages, task.pages_per_round, swarm.excluded)
        ]
        chunks = split(task.inner_steps, evals_per_round)
        for i, steps in enumerate(chunks):
            trainer.train(corpus.pages(pages), steps=steps, seed=r * evals_per_round + i)
            swarm.state.theta.copy_(params.flatten(model))
            tokens.append(tokens[-1] + steps * step_tokens)
            losses.append(swarm.eval())
        report(CENTRALIZED.name, task.peers, r, losses[-1], started)
    return Curve(CENTRALIZED.name, task.peers, tokens, losses, time.perf_counter() - started)


def split(steps: int, parts: int) -> list[int]:
    parts = max(1, min(parts, steps))
    return [steps // parts + (1 if i < steps % parts else 0) for i in range(parts)]


def report(name: str, peers: int, r: int, loss: float, started: float) -> None:
    print(f"  {name:<18} {peers} peers  round {r:>3}  eval {loss:.4f}  ({time.perf_counter() - started:.0f} s)", flush=True)


def run(recipe: Recipe, task: Task, corpus: Corpus) -> Curve:
    torch.manual_seed(task.seed)
    return run_centralized(task, corpus) if recipe.codec is None else run_swarm(recipe, task, corpus)
