"""protocol/plan.py: the learning-rate plan's curves, and [plan] in a run file."""

import itertools
import math
from dataclasses import replace

import pytest

from node.config import ConfigError, NodeConfig, RunSpec, parse_run_file, render_run_file
from protocol.plan import LrCurve, PlanSpec


def factors(curve: LrCurve, rounds: int, upto: int | None = None) -> list[float]:
    return [curve.factor(r, rounds) for r in range(rounds if upto is None else upto)]


def test_warmup_is_linear_over_the_first_rounds_then_reaches_the_peak():
    for shape in ("constant", "cosine", "wsd"):
        curve = LrCurve(shape, warmup_rounds=4, decay_rounds=2)
        assert factors(curve, 20, 5) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0]), shape
    assert factors(LrCurve("constant", warmup_rounds=4), 20)[4:] == [1.0] * 16  # constant: no decay after it


def test_cosine_is_half_a_cosine_from_the_peak_to_min_ratio():
    curve = LrCurve("cosine", min_ratio=0.1)
    assert curve.factor(0, 11) == 1.0
    assert curve.factor(5, 11) == pytest.approx(0.55)  # the midpoint: halfway between 1 and min_ratio
    assert curve.factor(10, 11) == pytest.approx(0.1)  # the last planned round
    assert curve.factor(9, 11) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(0.9 * math.pi)))
    f = factors(curve, 11)
    assert all(a > b for a, b in itertools.pairwise(f))  # strictly falling
    with_warmup = LrCurve("cosine", warmup_rounds=2, min_ratio=0.0)
    assert with_warmup.factor(2, 12) == 1.0 and with_warmup.factor(2 + 9 // 2, 12) < 1.0  # the cosine starts after the warmup
    assert with_warmup.factor(11, 12) == 0.0


def test_wsd_is_stable_then_decays_linearly_over_its_last_rounds():
    curve = LrCurve("wsd", warmup_rounds=2, decay_rounds=4, min_ratio=0.2)
    f = factors(curve, 10)
    assert f[:2] == pytest.approx([1 / 3, 2 / 3])
    assert f[2:6] == [1.0, 1.0, 1.0, 1.0]  # stable up to the decay's start (round 10 - 1 - 4)
    assert f[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])  # equal steps down to min_ratio
    # a longer run stretches the stable phase: the decay is the same curve, shifted
    assert factors(curve, 30)[26:] == pytest.approx(f[6:]) and factors(curve, 30)[2:26] == [1.0] * 24


def test_past_the_planned_end_the_factor_stays_at_min_ratio():
    for curve in (LrCurve("cosine", min_ratio=0.05), LrCurve("wsd", decay_rounds=3, min_ratio=0.05)):
        assert [curve.factor(r, 10) for r in (9, 10, 11, 1000)] == [0.05] * 4


def test_no_planned_rounds_means_factor_one_throughout():
    for curve in (LrCurve("cosine", warmup_rounds=5), LrCurve("wsd", warmup_rounds=2, decay_rounds=3), LrCurve()):
        assert [curve.factor(r, 0) for r in (0, 1, 7, 10_000)] == [1.0] * 4
    plan = PlanSpec()
    assert plan.inner_factor(3) == plan.outer_factor(3) == 1.0


def test_the_plan_gives_each_optimizer_its_own_curve():
    plan = PlanSpec(rounds=10, inner=LrCurve("cosine", min_ratio=0.0), outer=LrCurve("wsd", warmup_rounds=1, decay_rounds=2))
    assert plan.inner_factor(0) == 1.0 and plan.outer_factor(0) == 0.5
    assert plan.inner_factor(9) == 0.0 and plan.outer_factor(9) == pytest.approx(0.1)
    assert plan.inner_factor(4) == plan.inner.factor(4, 10) and plan.outer_factor(4) == plan.outer.factor(4, 10)


@pytest.mark.parametrize(
    "table",
    [
        "[plan]\nrounds = -1",
        '[plan.inner]\nshape = "linear"',
        "[plan.inner]\nwarmup_rounds = -2",
        "[plan.outer]\ndecay_rounds = -1",
        "[plan.outer]\nmin_ratio = 1.5",
        "[plan.outer]\nmin_ratio = -0.1",
        '[plan.inner]\nmin_ratio = "low"',
        "[plan.inner]\nwarmup_rounds = 2.5",
        "[plan.inner]\nsteps = 3",
        "[plan]\ncurve = 1",
        "[plan]\ninner = 3",
    ],
)
def test_invalid_plans_are_config_errors(table):
    with pytest.raises(ConfigError):
        parse_run_file(table + "\n")


def test_a_plan_reads_from_toml_and_round_trips():
    spec, _ = parse_run_file(
        '[plan]\nrounds = 1000\n\n[plan.inner]\nshape = "cosine"\nwarmup_rounds = 10\nmin_ratio = 0\n\n'
        '[plan.outer]\nshape = "wsd"\nwarmup_rounds = 5\ndecay_rounds = 100\nmin_ratio = 0.25\n'
    )
    assert spec.plan == PlanSpec(rounds=1000, inner=LrCurve("cosine", warmup_rounds=10, min_ratio=0.0), outer=LrCurve("wsd", 5, 0.25, 100))
    again, node = parse_run_file(render_run_file(spec, NodeConfig()))
    assert again == spec and node == NodeConfig() and again.run_id == spec.run_id
    assert "[plan.inner]" in render_run_file(RunSpec(), NodeConfig())  # the default plan is written out too
    assert parse_run_file(render_run_file(RunSpec(), NodeConfig()))[0].plan == PlanSpec()
    # the plan is part of what makes the run: nodes with different plans are in different runs
    assert replace(spec, plan=replace(spec.plan, rounds=999)).run_id != spec.run_id
