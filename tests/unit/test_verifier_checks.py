"""The verifier's checks on real training: work on the assigned pages is told apart from work elsewhere."""

import numpy as np
import pytest
import torch

from node.trainer import params
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from node.verifier.checks import CheckInputs, LossMemo, Tolerances, run_checks
from protocol.assignment import check_pages, control_pages

SEQ = 64
WINDOWS = 7  # (512 - 1) // 64


def _page(seed: int) -> np.ndarray:
    """512 tokens of text in a vocabulary of its own: learning it helps this page, little else."""
    rng = np.random.default_rng(seed)
    words = [bytes(rng.integers(97, 123, size=rng.integers(3, 8)).tolist()) for _ in range(24)]
    text = b" ".join(words[i] for i in rng.integers(0, len(words), size=400))
    return np.frombuffer(text[:512], dtype=np.uint8).copy()


@pytest.fixture(scope="module")
def round_():
    """θ_r and the updates of four nodes: three trained on their own pages, one on pages it was not assigned."""
    torch.manual_seed(0)
    pages = [_page(i) for i in range(12)]
    model = build_model("tiny", 0)
    theta = params.flatten(model).clone()

    def update(trained_on: list[int]) -> torch.Tensor:
        params.load_flat(model, theta)
        InnerTrainer(model, lr=3e-3, batch_size=4, seq_len=SEQ, weight_decay=0.0).train([pages[i] for i in trained_on], steps=30, seed=1)
        return theta - params.flatten(model)

    updates = {"honest": update([0, 1]), "peer": update([6, 7]), "peer2": update([10, 11]), "elsewhere": update([4, 5])}
    assigned = {"honest": [0, 1], "peer": [6, 7], "peer2": [10, 11], "elsewhere": [2, 3]}
    return pages, theta, updates, assigned


def _check(round_, subject: str, priors: tuple = (), vector=None, memo=None, tol=Tolerances()):
    pages, theta, updates, assigned = round_
    others = [v for h, v in sorted(updates.items()) if h != subject]
    inputs = CheckInputs(
        theta=theta,
        vector=updates[subject] if vector is None else vector,
        others=others,
        assigned=[pages[i] for i in assigned[subject]],
        control=[pages[8], pages[9]],
        stale=False,
        prior_specificities=tuple(priors),
    )
    return run_checks(build_model("tiny", 0), inputs, SEQ, WINDOWS, tol, memo)


def test_work_on_assigned_pages_is_specific(round_):
    honest = _check(round_, "honest")
    elsewhere = _check(round_, "elsewhere")
    assert honest.metrics["gain_own"] > 0 and elsewhere.metrics["gain_own"] > 0  # both learned the language
    assert honest.metrics["specificity"] > 0.1
    assert elsewhere.metrics["specificity"] < 0.05
    assert honest.verdict == "pass" and elsewhere.verdict == "pass"  # one round alone never fails on specificity


def test_running_median_fails_training_elsewhere_and_passes_honest_work(round_):
    tol = Tolerances()
    elsewhere = _check(round_, "elsewhere")
    spec = elsewhere.metrics["specificity"]
    history = _check(round_, "elsewhere", priors=(spec,) * (tol.min_history - 1))
    assert history.verdict == "fail" and "assigned pages not learned" in history.reason
    assert history.metrics["median_specificity"] == pytest.approx(spec)
    honest = _check(round_, "honest", priors=(0.05,) * (tol.min_history - 1))
    assert honest.verdict == "pass"


def test_one_lucky_round_does_not_carry_a_cheater(round_):
    """The mean of (x, x, 0.9) would pass; the median does not."""
    tol = Tolerances()
    spec = _check(round_, "elsewhere").metrics["specificity"]
    result = _check(round_, "elsewhere", priors=(0.9, spec))
    assert result.verdict == "fail" and result.metrics["median_specificity"] == pytest.approx(spec)
    assert (spec + spec + 0.9) / 3 > tol.min_median_specificity
    assert result.metrics["prior_count"] == 2 and result.metrics["prior_specificity_0"] == 0.9


def test_too_few_yardsticks_are_not_judged(round_):
    """With fewer usable peers than min_reference_peers the round neither counts nor fails."""
    tol = Tolerances(min_reference_peers=4)  # the fixture's rounds have 3 others
    result = _check(round_, "elsewhere", priors=(-0.5,) * tol.min_history, tol=tol)
    assert result.metrics["specificity_judged"] == 0.0 and result.metrics["specificity"] == 0.0
    assert result.verdict == "pass" and result.metrics["median_specificity"] == pytest.approx(-0.5)


def test_noise_fails_at_once(round_):
    v = round_[2]["honest"]
    noise = torch.randn(v.numel(), generator=torch.Generator().manual_seed(3))
    result = _check(round_, "honest", vector=noise * (v.norm() / noise.norm()))
    assert result.verdict == "fail" and "no work" in result.reason


def test_memo_gives_the_same_metrics(round_):
    memo = LossMemo()
    first = _check(round_, "honest", memo=memo)
    assert _check(round_, "honest", memo=memo).metrics == first.metrics == _check(round_, "honest").metrics


def test_control_pages_are_unassigned_and_shared_by_the_round():
    run = b"\x07" * 32
    busy = frozenset(range(0, 100, 3))
    control = control_pages(run, 5, "verifier", 6, 200, busy)
    assert len(set(control)) == 6 and not set(control) & busy
    assert control == control_pages(run, 5, "verifier", 6, 200, busy)
    assert control != control_pages(run, 6, "verifier", 6, 200, busy)
    with pytest.raises(ValueError):
        control_pages(run, 5, "verifier", 6, 36, busy)
    chosen = check_pages(run, 5, "verifier", "subject", [10, 11, 12, 13, 14], 3)
    assert len(chosen) == 3 and set(chosen) <= {10, 11, 12, 13, 14}
