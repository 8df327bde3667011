"""The round that benchmarks/compression.py trains with, and the codec work it measures against it.

A swarm of peers in one process runs the node's round, not a model of it:
each peer trains with the node's inner loop and seed (benchmarks/peers.py),
packs Δ with the node's error-feedback step, every contribution is decoded as
the node decodes it, and θ_{r+1} is the node's `next_state` (robust mean and
outer step). Where the benchmark differs from a node it does so on purpose,
and says so below.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.compression_codecs import Entry, HivemindCodec, make_codec, time_call
from benchmarks.peers import Peer
from node.config import CodecSettings, RunSpec, TrainSpec
from node.data.corpus import Corpus
from node.outer.optimizer import OuterOptimizer, OuterState
from node.round.apply import next_state
from node.trainer import params
from node.trainer.inner import eval_loss
from node.trainer.model import build_model
from protocol.assignment import assign_pages, eval_pages
from protocol.compression import Codec, ErrorFeedback


@dataclass
class Task:
    preset: str = "tiny"
    peers: int = 4
    rounds: int = 16
    inner_steps: int = 40
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    batch_size: int = 8
    seq_len: int = 128
    pages_per_round: int = 8
    eval_pages: int = 8
    seed: int = 0
    run_id: bytes = field(default_factory=lambda: hashlib.sha256(b"gradswarm/benchmarks/compression").digest())

    def train_spec(self) -> TrainSpec:
        """The run spec's [train] table this task stands for."""
        return TrainSpec(
            inner_steps=self.inner_steps,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
        )


class Swarm:
    """The peers, the shared outer state and the held-out eval pages of one training run."""

    def __init__(self, task: Task, corpus: Corpus):
        self.task, self.corpus = task, corpus
        eval_ids = eval_pages(task.run_id, corpus.num_pages, task.eval_pages)
        self.excluded = frozenset(eval_ids)
        self.eval_set = corpus.pages(eval_ids)
        self.model = build_model(task.preset, task.seed)  # scratch space for the eval loss
        self.state = OuterState.fresh(params.flatten(self.model))
        train = task.train_spec()
        self.peers = [Peer.build(f"peer{p}", task.preset, task.seed, train) for p in range(task.peers)]

    def train_peer(self, p: int, r: int) -> torch.Tensor:
        """Peer p's Δ of round r: `task.inner_steps` inner steps from the shared θ on its assigned pages."""
        t, peer = self.task, self.peers[p]
        pages = assign_pages(t.run_id, r, peer.hotkey, self.corpus.num_pages, t.pages_per_round, self.excluded)
        return peer.delta(t.run_id, r, self.state.theta, self.corpus.pages(pages), t.inner_steps)

    def apply(self, outer: OuterOptimizer, vectors: list[torch.Tensor], mean: str = "all") -> None:
        """θ_{r+1} as every node computes it. Each contribution has weight 1: the peers have the same
        standing, so a manifest would weigh them alike (ManifestEntry's default). `mean="senders"`
        (a candidate, not the node's rule) rescales each coordinate to the mean over the peers that sent it."""
        if mean == "senders":
            senders = torch.stack([v != 0 for v in vectors]).sum(dim=0).clamp(min=1).to(torch.float32)
            vectors = [v * (len(vectors) / senders) for v in vectors]
        self.state = next_state(outer, self.state, vectors, [1.0] * len(vectors))

    def eval(self) -> float:
        params.load_flat(self.model, self.state.theta)
        return eval_loss(self.model, self.eval_set, self.task.seq_len)


def load_corpus() -> Corpus:
    from node.config import RunSpec
    from node.data.sources import open_corpus

    cache = Path(os.environ.get("GRADSWARM_BENCH_CACHE", Path(tempfile.gettempdir()) / "gradswarm-bench")) / "corpus"
    return open_corpus(RunSpec(), cache)


def send(feedback: ErrorFeedback, delta: torch.Tensor, codec: Codec | HivemindCodec | None, beta: float) -> tuple[torch.Tensor, int]:
    """What a peer publishes for Δ, as every node decodes it, and its bytes on the wire. Without a codec
    it is DiLoCo's dense baseline: Δ itself in fp32, which no node of this project sends."""
    numel = delta.numel()
    if codec is None:
        return delta, 4 * numel
    payload = feedback.step(delta, codec, beta=beta)
    return codec.decode(payload, numel), len(payload)


def overhead(entries: list[Entry], corpus: Corpus, demo_peers: int = 3, also_steps: int = 10) -> dict:
    """Codec work of one demo round against that round's inner-loop compute."""
    spec = RunSpec()
    t = spec.train
    task = Task(
        preset=spec.model.preset,
        peers=1,
        inner_steps=t.inner_steps,
        lr=t.lr,
        weight_decay=t.weight_decay,
        batch_size=t.batch_size,
        seq_len=t.seq_len,
        pages_per_round=spec.data.pages_per_round,
        warmup_steps=t.warmup_steps,
    )
    swarm = Swarm(task, corpus)
    swarm.train_peer(0, 0)  # warm-up round (first-call costs)

    def inner_seconds(steps: int, rounds: tuple[int, ...]) -> tuple[float, torch.Tensor]:
        swarm.task.inner_steps = steps
        best = float("inf")
        for r in rounds:
            start = time.perf_counter()
            delta = swarm.train_peer(0, r)
            best = min(best, time.perf_counter() - start)
        return best, delta

    demo_steps = task.inner_steps
    inner_also, _ = inner_seconds(also_steps, (1, 2, 3))
    inner, delta = inner_seconds(demo_steps, (4, 5))
    numel = delta.numel()
    out = {
        "preset": task.preset,
        "numel": numel,
        "inner_steps": demo_steps,
        "demo_peers": demo_peers,
        "inner_seconds": inner,
        "per_round_work": f"error-feedback step (1 encode + 1 decode) + 1 decode at publish + {demo_peers - 1} peer decodes",
        "default_codec": CodecSettings().name,
        "also": {"inner_steps": also_steps, "inner_seconds": inner_also},
        "codecs": [],
    }
    for entry in entries:
        if entry.codec == "fp32" or entry.codec.startswith("hivemind"):
            continue
        codec = make_codec(entry)

        def one_round(codec=codec, beta=entry.beta) -> None:
            payload = ErrorFeedback().step(delta, codec, beta=beta)
            for _ in range(demo_peers):
                codec.decode(payload, numel)

        one_round()
        seconds, _ = time_call(one_round, 5)
        out["codecs"].append(
            {"name": entry.name, "seconds": seconds, "fraction_of_inner": seconds / inner, "fraction_of_inner_also": seconds / inner_also}
        )
    return out


def train_entry(entry: Entry, task: Task, corpus: Corpus, shadow: Entry | None = None) -> dict:
    """One run of the task with ``entry``'s codec and recipe. ``shadow``: a codec that must
    decode to the very same vectors every round (its bytes are recorded too)."""
    swarm = Swarm(task, corpus)
    numel = swarm.state.theta.numel()
    codec, first = make_codec(entry), make_codec(entry, round_=0)
    twin = make_codec(shadow) if shadow else None
    twin_first = make_codec(shadow, round_=0) if shadow else None
    # The twin's own residuals: they stay equal to the codec's for as long as its decodes are.
    twin_feedback = [ErrorFeedback() for _ in swarm.peers]
    outer = OuterOptimizer(lr=entry.outer_lr, momentum=entry.outer_momentum, nesterov=True)
    losses, sent, twin_sent = [], [], []
    start = time.perf_counter()
    for r in range(task.rounds):
        contributions, nbytes, twin_bytes = [], [], []
        for p, peer in enumerate(swarm.peers):
            delta = swarm.train_peer(p, r)
            vec, size = send(peer.feedback, delta, codec if r else first, entry.beta)
            if twin is not None:
                twin_vec, twin_size = send(twin_feedback[p], delta, twin if r else twin_first, shadow.beta)
                if not torch.equal(twin_vec, vec):
                    raise AssertionError(f"{shadow.name} decoded differently from {entry.name} in round {r}")
                twin_bytes.append(twin_size)
            contributions.append(vec)
            nbytes.append(size)
        swarm.apply(outer, contributions, entry.mean)
        losses.append(swarm.eval())
        sent.append(sum(nbytes) / len(nbytes))
        twin_sent.append(sum(twin_bytes) / len(twin_bytes) if twin_bytes else 0)
        print(
            f"  {entry.name:<24} round {r:>3}  eval {losses[-1]:.4f}  bytes/peer {sent[-1]:>10,.0f}  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    result = {
        "name": entry.name,
        "numel": numel,
        "eval_loss": losses,
        "bytes_per_peer_round": sent,
        "wall_seconds": time.perf_counter() - start,
    }
    if shadow:
        result["shadow"] = {"name": shadow.name, "bytes_per_peer_round": twin_sent}
    return result
