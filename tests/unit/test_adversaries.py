"""devnet/adversaries.py: each cheater is the honest Worker with one choice changed."""

import asyncio
import time

import torch

from devnet.adversaries import KINDS, WORKERS, Copy, Noise, Scaled, Stale, WrongPages, check_kind
from node.outer.contributions import Collected
from node.outer.optimizer import OuterState
from node.round.states import Base
from node.round.train import Worker
from protocol.schedule import RoundSchedule


def bare(cls: type[Worker], **more) -> Worker:
    """A worker whose hooks can be called without a model (they read none of it)."""
    return cls(b"r" * 32, "me", None, None, frozenset(), None, None, None, torch.device("cpu"), None, None, **more)


def test_the_honest_choices_are_the_identity():
    honest, delta = bare(Worker), torch.randn(8)
    state = OuterState.fresh(torch.zeros(8))
    assert honest.pages_of("me") == "me" and honest.start_state(state) is state and honest.update(delta, 3) is delta


def test_each_cheat_changes_its_one_choice():
    delta = torch.randn(64)
    assert bare(WrongPages).pages_of("me") != "me"
    noise = bare(Noise).update(delta, 3)
    assert torch.isclose(noise.norm(), delta.norm()) and torch.nn.functional.cosine_similarity(noise, delta, dim=0).abs() < 0.5
    assert torch.equal(bare(Scaled).update(delta, 3), delta * 100.0)
    stale, first, second = bare(Stale), OuterState.fresh(torch.zeros(8)), OuterState.fresh(torch.ones(8))
    assert stale.start_state(first) is first and stale.start_state(second) is first  # one round behind, from the second round on


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
    import pytest

    with pytest.raises(ValueError):
        check_kind("honest-ish")
