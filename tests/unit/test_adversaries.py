"""devnet/adversaries.py: each cheater is the honest Worker with one choice changed."""

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace

import torch

from devnet.adversaries import (
    KINDS,
    WORKERS,
    Copy,
    FewSteps,
    HalfSteps,
    Late,
    Negated,
    Noise,
    Scaled,
    Shrunk,
    Stale,
    WrongPages,
    check_kind,
)
from node.config import RunSpec
from node.outer.contributions import Collected
from node.outer.optimizer import OuterState
from node.round.states import Base
from node.round.train import Work, Worker
from protocol.schedule import RoundSchedule


def bare(cls: type[Worker], spec: RunSpec | None = None, trainer=None, **more) -> Worker:
    """A worker whose hooks can be called without a model (they read none of it)."""
    return cls(b"r" * 32, "me", spec, None, frozenset(), None, trainer, None, torch.device("cpu"), None, None, **more)


def test_the_honest_choices_are_the_identity():
    honest, delta = bare(Worker, RunSpec()), torch.randn(8)
    state = OuterState.fresh(torch.zeros(8))
    assert honest.pages_of("me") == "me" and honest.start_state(state) is state and honest.update(delta, 3) is delta
    assert honest.steps() == RunSpec().train.inner_steps


def test_each_cheat_changes_its_one_choice():
    delta = torch.randn(64)
    assert bare(WrongPages).pages_of("me") != "me"
    noise = bare(Noise).update(delta, 3)
    assert torch.isclose(noise.norm(), delta.norm()) and torch.nn.functional.cosine_similarity(noise, delta, dim=0).abs() < 0.5
    assert torch.equal(bare(Scaled).update(delta, 3), delta * 100.0)
    stale, first, second = bare(Stale), OuterState.fresh(torch.zeros(8)), OuterState.fresh(torch.ones(8))
    assert stale.start_state(first) is first and stale.start_state(second) is first  # one round behind, from the second round on
    assert torch.equal(bare(Negated).update(delta, 3), -delta)
    assert torch.allclose(bare(Shrunk).update(delta, 3), delta * 0.05)


def test_the_step_skippers_take_fewer_steps_and_one_hides_it_in_the_norm():
    spec, delta = RunSpec(), torch.randn(64)
    assert spec.train.inner_steps == 40
    assert bare(FewSteps, spec).steps() == 4 and bare(HalfSteps, spec).steps() == 20
    assert torch.equal(bare(HalfSteps, spec).update(delta, 3), delta * 2.0)
    one = RunSpec(train=replace(spec.train, inner_steps=1))
    assert bare(FewSteps, one).steps() == 1 and bare(HalfSteps, one).steps() == 1  # never zero steps
    assert bare(FewSteps, spec).update(delta, 3) is delta  # publishes what it trained


def test_the_late_node_publishes_the_previous_rounds_work_in_time_for_this_round():
    class Trained(Late):
        def train_and_compress(self, r, base, deadline):
            return 1.0 + r, f"payload of round {r}".encode(), (float(r),)

    late = bare(Trained, trainer=SimpleNamespace(last_steps=40, last_seconds=2.0, batch_size=8, seq_len=128))
    schedule = RoundSchedule(genesis=time.time(), round_seconds=60.0)
    base = Base(0, OuterState.fresh(torch.zeros(8)), b"h" * 32)
    published = [asyncio.run(late.work(r, base, schedule.deadlines(r))) for r in range(3)]
    assert published[0] is None  # nothing trained before its first round
    for r in (1, 2):
        work = published[r]
        assert isinstance(work, Work) and work.payload == f"payload of round {r - 1}".encode()
        assert work.first_losses == (float(r - 1),) and work.loss == float(r)
        assert work.publish_until == schedule.deadlines(r).reveal
    assert late.previous.payload == b"payload of round 2"  # it trained this round too


def test_the_copier_republishes_another_nodes_payload():
    class Pool:
        def __init__(self):
            self.payloads = {b"d" * 32: (0, b"their payload")}

        async def poll(self, r):
            return Collected(metas={"them": type("M", (), {"digest": b"d" * 32})()}, vectors={"them": torch.zeros(1)})

    copier = bare(Copy, pool=Pool())
    schedule = RoundSchedule(genesis=time.time(), round_seconds=60.0)
    base = Base(0, OuterState.fresh(torch.zeros(8)), b"h" * 32)
    work = asyncio.run(copier.work(0, base, schedule.deadlines(0)))
    assert work.payload == b"their payload" and work.loss is None


def test_every_kind_has_a_worker_and_unknown_kinds_are_refused():
    assert set(KINDS) == set(WORKERS) and all(issubclass(w, Worker) for w in WORKERS.values())
    assert {
        "few-steps",
        "half-steps",
        "negated",
        "late",
        "shrunk",
        "copy",
        "noise",
        "wrong-pages",
        "scaled",
        "stale",
        "forged-wrong-pages",
        "forged-stale",
    } == set(KINDS)
    import pytest

    with pytest.raises(ValueError):
        check_kind("honest-ish")
