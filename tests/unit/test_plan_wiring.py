"""The run's learning-rate plan where it acts: the inner steps, the outer step of a manifest, the head start,
and the verifier's and an auditor's rebuild of it. Every factor is a function of the round alone."""

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from node.audit.replay import Replayer
from node.config import RunSpec, TrainSpec
from node.outer.aggregate import robust_mean
from node.outer.contributions import Collected
from node.outer.head_start import Head, head_lr, head_start
from node.outer.optimizer import OuterOptimizer, OuterState
from node.round.apply import apply_manifest, next_state
from node.round.manifest import sign_manifest
from node.round.states import Base
from node.round.train import Worker
from node.trainer import params
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from protocol.compression import ErrorFeedback, get_codec
from protocol.messages import ContributionMeta, ManifestEntry, RoundManifest
from protocol.plan import LrCurve, PlanSpec
from protocol.schedule import RoundSchedule
from tests.support.corpora import text_pages

PLAN = PlanSpec(
    rounds=12,
    inner=LrCurve("cosine", warmup_rounds=2, min_ratio=0.1),
    outer=LrCurve("wsd", warmup_rounds=3, decay_rounds=4, min_ratio=0.2),
)
SEQ = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- inner


def trained(factor: float, warmup_steps: int = 0) -> tuple[torch.Tensor, InnerTrainer]:
    """Δ of 3 inner steps at `factor` from the same weights, pages and seed."""
    model = build_model("tiny", 0)
    theta = params.flatten(model)
    trainer = InnerTrainer(model, lr=1e-3, warmup_steps=warmup_steps, batch_size=2, seq_len=SEQ)
    trainer.train(text_pages(page_tokens=256), 3, seed=7, lr_factor=factor)
    return theta - params.flatten(model), trainer


def test_the_inner_trainer_takes_its_steps_at_the_factor_it_is_given():
    full, at_full = trained(1.0)
    half, at_half = trained(0.5)
    assert not torch.equal(full, half) and 0.3 * full.norm() < half.norm() < 0.7 * full.norm()
    assert at_full.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert at_half.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert torch.equal(trained(1.0)[0], full)  # the same factor: the same bits
    assert not trained(0.0)[0].any()  # factor 0: not even weight decay moves a weight
    _, warming = trained(0.5, warmup_steps=4)  # a fresh optimizer's own warmup is multiplied in
    assert warming.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * 3 / 4)
    with pytest.raises(ValueError):
        warming.train(text_pages(page_tokens=256), 1, seed=0, lr_factor=-1.0)


class PageStore:
    """What a worker reads of a corpus."""

    def __init__(self, pages: list[np.ndarray]):
        self._pages, self.num_pages = pages, len(pages)

    def pages(self, ids: list[int]) -> list[np.ndarray]:
        return [self._pages[i] for i in ids]


PLANNED = replace(
    RunSpec(),
    train=TrainSpec(inner_steps=2, batch_size=2, seq_len=SEQ, warmup_steps=0),
    data=replace(RunSpec().data, pages_per_round=2),
    plan=PLAN,
)


def node_worker(spec: RunSpec = PLANNED) -> Worker:
    """A node's honest worker, as a fresh process (or a restarted one) builds it."""
    model = build_model("tiny", 0)
    trainer = InnerTrainer.from_spec(model, spec.train, "cpu")
    codec = get_codec(spec.codec.codec_spec())
    return Worker(
        spec.run_id,
        "me",
        spec,
        PageStore(text_pages(page_tokens=256)),
        frozenset(),
        model,
        trainer,
        None,
        torch.device("cpu"),
        ErrorFeedback(),
        codec,
    )


def round_lrs(worker: Worker, rounds: list[int]) -> list[float]:
    """The inner lr each round trained at, as the optimizer last held it."""
    lrs = []
    for r in rounds:
        worker.train_and_compress(r, OuterState.fresh(params.flatten(worker.model)), time.time() + 600)
        lrs.append(worker.trainer.optimizer.param_groups[0]["lr"])
    return lrs


def test_a_round_trains_at_its_own_inner_factor_however_many_rounds_the_process_has_run():
    planned = [PLANNED.train.lr * PLAN.inner_factor(r) for r in range(12)]
    assert len(set(planned)) > 5  # warmup and decay: the rounds really differ
    long_running = round_lrs(node_worker(), [0, 1, 2, 3, 4, 5])
    assert long_running == pytest.approx(planned[:6])
    assert round_lrs(node_worker(), [5]) == pytest.approx([long_running[5]])  # restarted at round 5: round 5's lr
    assert round_lrs(node_worker(), [11, 1]) == pytest.approx([planned[11], planned[1]])  # joined late, any order
    assert round_lrs(node_worker(replace(PLANNED, plan=PlanSpec())), [0, 11]) == pytest.approx([PLANNED.train.lr] * 2)


# ---------------------------------------------------------------- outer


OUTER = OuterOptimizer(lr=1.0, momentum=0.0, plan=PLAN)


def test_the_run_s_outer_optimizer_carries_the_plan():
    spec = replace(RunSpec(), outer=replace(RunSpec().outer, lr=0.7, momentum=0.5), plan=PLAN)
    outer = OuterOptimizer.from_spec(spec)
    assert (outer.lr, outer.momentum, outer.nesterov, outer.plan) == (0.7, 0.5, spec.outer.nesterov, PLAN)
    assert [outer.lr_at(r) for r in range(14)] == [0.7 * PLAN.outer_factor(r) for r in range(14)]
    assert OuterOptimizer.from_spec(RunSpec()).lr_at(5) == RunSpec().outer.lr  # no plan: the peak lr
    state, g = OuterState.fresh(torch.zeros(3)), torch.tensor([1.0, 0.0, -1.0])
    OuterOptimizer(lr=1.0, momentum=0.0, plan=PLAN).step(state, g)  # no round: the peak lr (benchmarks)
    assert torch.equal(state.theta, -g)


class Pool:
    def __init__(self, collected: Collected):
        self.collected = collected

    def round(self, r: int) -> Collected:
        return self.collected

    async def fetch_entry(self, entry, signer):
        return None


def contributions(n: int = 3) -> tuple[Collected, tuple[ManifestEntry, ...]]:
    g = torch.Generator().manual_seed(0)
    vectors = {f"h{i}": torch.randn(32, generator=g) for i in range(n)}
    metas = {
        h: ContributionMeta(
            run_id=b"r" * 32, round=0, hotkey=h, peer_id=b"p", digest=h.encode() * 16, nbytes=1, codec="topk", trained_from=b"b" * 32
        )
        for h in vectors
    }
    return Collected(metas=metas, vectors=vectors), tuple(ManifestEntry(h, metas[h].digest, 1.0 - 0.2 * i) for i, h in enumerate(vectors))


def test_a_manifest_is_applied_with_its_round_s_outer_factor():
    base = OuterState.fresh(torch.ones(32))
    collected, entries = contributions()
    mean = robust_mean([collected.vectors[e.hotkey] for e in entries], [e.weight for e in entries])
    results = {}
    for r in (0, 2, 5, 11, 40):
        manifest = RoundManifest(
            run_id=b"r" * 32, round=r, hotkey="s", base_state_hash=base.state_hash(), entries=entries, result_state_hash=b"x" * 32
        )
        results[r] = asyncio.run(apply_manifest(Pool(collected), OUTER, base, manifest))
        assert torch.allclose(results[r].theta, base.theta - PLAN.outer_factor(r) * mean, atol=1e-6), r
    assert PLAN.outer_factor(0) == 0.25 and PLAN.outer_factor(40) == 0.2
    assert not torch.equal(results[0].theta, results[5].theta) and not torch.equal(results[5].theta, results[11].theta)


def test_the_signer_and_every_node_applying_its_manifest_use_the_same_factor():
    class Board:
        run_id, keypair = b"r" * 32, SimpleNamespace(ss58_address="signer")

        async def post(self, manifest):
            return manifest

    base = OuterState.fresh(torch.ones(32))
    collected, entries = contributions()
    r = 1
    signed = asyncio.run(sign_manifest(Board(), r, Base(r, base, base.state_hash()), collected, entries, OUTER))
    vectors, weights = [collected.vectors[e.hotkey] for e in entries], [e.weight for e in entries]
    assert signed.state.state_hash() == next_state(OUTER, base, vectors, weights, r).state_hash() == signed.manifest.result_state_hash
    applied = asyncio.run(apply_manifest(Pool(collected), OUTER, base, signed.manifest))
    assert applied.state_hash() == signed.manifest.result_state_hash  # an honest node reproduces the signed state
    unplanned = asyncio.run(apply_manifest(Pool(collected), OuterOptimizer(lr=1.0, momentum=0.0), base, signed.manifest))
    assert unplanned.state_hash() != signed.manifest.result_state_hash  # one that ignored the plan would not


# ---------------------------------------------------------------- head start


def test_the_head_start_of_round_r_takes_round_r_minus_1_s_outer_lr():
    assert [head_lr(OUTER, r) for r in range(1, 13)] == [OUTER.lr_at(r - 1) for r in range(1, 13)]
    assert head_lr(OUTER, 0) == OUTER.lr_at(0)  # no head in round 0; never a factor of a round before the run

    class Started(Worker):
        def train_and_compress(self, r, base, deadline):
            self.started = base
            return 0.0, b"", ()

    spec = replace(RunSpec(), outer=replace(RunSpec().outer, lr=0.8), plan=PLAN)
    trainer = SimpleNamespace(last_steps=0, last_seconds=0.0, batch_size=1, seq_len=1)
    worker = Started(b"r" * 32, "me", spec, None, frozenset(), None, trainer, None, torch.device("cpu"), None, None)
    theta, own = torch.randn(64, generator=torch.Generator().manual_seed(1)), torch.randn(64, generator=torch.Generator().manual_seed(2))
    base = Base(1, OuterState(theta, torch.full((64,), 0.5)), b"h" * 32)
    r = 2
    asyncio.run(worker.work(r, base, RoundSchedule(genesis=time.time(), round_seconds=60.0).deadlines(r), Head(b"d" * 32, b"", own)))
    assert torch.equal(worker.started.theta, head_start(theta, own, 0.8 * PLAN.outer_factor(r - 1)))
    assert PLAN.outer_factor(r - 1) != PLAN.outer_factor(r)
    assert not torch.equal(worker.started.theta, head_start(theta, own, 0.8 * PLAN.outer_factor(r)))
    assert torch.equal(worker.started.momentum, base.state.momentum)


def test_the_verifier_and_an_auditor_rebuild_the_node_s_head_start_under_a_plan(audit_store):
    """The fixture's node C trained round 1 from θ − lr·factor(0)·head, computed there by hand."""
    spec = audit_store.spec()
    assert spec.plan.rounds > 0 and spec.plan.outer_factor(0) != spec.plan.outer_factor(1)
    started = [record for _, record in audit_store.records() if record.head_start]
    assert len(started) == 1
    record = started[0]
    # the verifier checked C at the start it rebuilt, and found C's committed losses there
    assert record.round == 1 and record.metric("head_start") == 1.0 and record.metric("first_loss_gap") < 1e-5
    replayer = Replayer(audit_store)
    base = audit_store.state(record.base_state_hash, replayer.numel).theta
    head = replayer.codec.decode(audit_store.blob(record.head_start), replayer.numel)
    start = replayer.inputs(record, 1).start
    assert torch.equal(start, head_start(base, head, spec.outer.lr * spec.plan.outer_factor(0)))
    assert not torch.equal(start, head_start(base, head, spec.outer.lr * spec.plan.outer_factor(1)))
