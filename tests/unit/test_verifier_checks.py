"""The verifier's checks on real training: every kind of fake work fails, honest work passes."""

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from node.outer.head_start import head_start
from node.trainer import params
from node.trainer.inner import InnerTrainer, first_batch, row_losses, sample_windows
from node.trainer.model import build_model
from node.verifier.alignment import Gradients
from node.verifier.checks import CheckInputs, Tolerances, run_checks
from node.verifier.windows import Draw, control_windows, first_rows, trained_starts, trained_windows
from protocol.assignment import control_pages

SEQ, BATCH, STEPS = 64, 4, 30
CLAIMED = {"honest": [0, 1, 2, 3], "peer1": [4, 5, 6, 7], "peer2": [8, 9, 10, 11], "peer3": [12, 13, 14, 15], "elsewhere": [20, 21, 22, 23]}
TRAINED_ON = {**CLAIMED, "elsewhere": [16, 17, 18, 19]}
CONTROL = [24, 25, 26, 27, 28, 29]


def _page(seed: int) -> np.ndarray:
    """512 tokens of text in a vocabulary of its own: learning it helps this page, little else."""
    rng = np.random.default_rng(seed)
    words = [bytes(rng.integers(97, 123, size=rng.integers(3, 8)).tolist()) for _ in range(24)]
    text = b" ".join(words[i] for i in rng.integers(0, len(words), size=400))
    return np.frombuffer(text[:512], dtype=np.uint8).copy()


@pytest.fixture(scope="module")
def round_():
    """θ_r and the updates of five nodes: four trained on their own pages, one on pages it was not assigned."""
    torch.manual_seed(0)
    pages = [_page(i) for i in range(30)]
    model = build_model("tiny", 0)
    theta = params.flatten(model).clone()

    def update(name: str) -> torch.Tensor:
        params.load_flat(model, theta)
        trainer = InnerTrainer(model, lr=3e-3, batch_size=BATCH, seq_len=SEQ, weight_decay=0.0)
        trainer.train([pages[i] for i in TRAINED_ON[name]], steps=STEPS, seed=SEEDS[name])
        return theta - params.flatten(model)

    return pages, theta, {name: update(name) for name in CLAIMED}


SEEDS = {name: 100 + i for i, name in enumerate(CLAIMED)}


def _inputs(
    round_,
    subject,
    *,
    vector=None,
    work=True,
    claimed_theta=None,
    previous=(),
    prior_alignment=(),
    prior_work=(),
    warm=True,
    others_warm=True,
):
    pages, theta, updates = round_
    draw = Draw(b"r" * 32, 3, "verifier", b"b" * 32, subject)
    claimed = [pages[i] for i in CLAIMED[subject]]
    rows, first = first_rows(claimed, SEEDS[subject], BATCH, SEQ, 2, draw)
    model = build_model("tiny", 0)
    params.load_flat(model, theta if claimed_theta is None else claimed_theta)
    committed = row_losses(model, first_batch(claimed, BATCH, SEQ, SEEDS[subject]))
    return CheckInputs(
        theta=theta,
        start=theta,
        vector=updates[subject] if vector is None else vector,
        others=[v for h, v in sorted(updates.items()) if h != subject],
        previous=list(previous),
        control=control_windows([pages[i] for i in CONTROL], SEQ, Draw(b"r" * 32, 3, "verifier", b"b" * 32, "")),
        first=first,
        claimed=tuple(committed[i] for i in rows),
        trained=trained_windows(claimed, SEEDS[subject], STEPS, BATCH, SEQ, draw) if work else None,
        stale=False,
        warm=warm,
        others_warm=tuple(others_warm for h in updates if h != subject),
        prior_alignment=tuple(prior_alignment),
        prior_work=tuple(prior_work),
    )


def _check(round_, subject, tol=Tolerances(), **kwargs):
    return run_checks(build_model("tiny", 0), _inputs(round_, subject, **kwargs), tol)


def test_work_on_the_assigned_pages_is_told_from_work_elsewhere(round_):
    honest = [_check(round_, name) for name in ("honest", "peer1", "peer2", "peer3")]
    elsewhere = _check(round_, "elsewhere")
    zs = [r.metrics["work_z"] for r in honest]
    assert min(zs) > elsewhere.metrics["work_z"] + 1.0 and sum(zs) / len(zs) > 1.0, (zs, elsewhere.metrics)
    assert elsewhere.metrics["work_z"] < 0 < elsewhere.metrics["work_checks"]
    assert all(r.verdict == "pass" for r in honest) and elsewhere.verdict == "pass"  # one check is not enough evidence
    assert 0.5 < elsewhere.metrics["alignment"] < 2.0  # it did real training: only the pages give it away


def test_pooled_evidence_fails_work_elsewhere_and_passes_honest_work(round_):
    tol = Tolerances()
    z = _check(round_, "elsewhere").metrics["work_z"]
    pooled = _check(round_, "elsewhere", prior_work=(z, z, z, z, z))
    assert pooled.verdict == "fail" and "assigned pages not learned" in pooled.reason
    assert pooled.metrics["work_checks"] == 6 and pooled.metrics["work_evidence"] == pytest.approx(6 * tol.work_llr(z))
    assert _check(round_, "elsewhere", prior_work=(z,)).verdict == "pass"  # two checks are not yet enough
    honest = _check(round_, "honest", prior_work=(tol.work_effect,) * 5)
    assert honest.verdict == "pass"
    assert tol.work_llr(tol.work_effect / 2) == pytest.approx(0.0)  # halfway between the hypotheses: no evidence either way


def test_a_claimed_start_state_that_is_not_theta_r_fails_on_the_first_batch(round_):
    _, theta, _ = round_
    older = theta + 0.02 * torch.randn(theta.numel(), generator=torch.Generator().manual_seed(5))
    result = _check(round_, "honest", claimed_theta=older, work=False)
    assert result.verdict == "fail" and "first batch" in result.reason
    assert result.metrics["first_loss_gap"] > Tolerances().first_loss_atol
    assert _check(round_, "honest", work=False).metrics["first_loss_gap"] < 1e-5  # the honest commitment


def test_a_head_start_is_checked_at_the_state_it_names_and_an_unknown_one_fails(round_):
    _, theta, _ = round_
    moved = head_start(theta, 0.05 * torch.randn(theta.numel(), generator=torch.Generator().manual_seed(6)), 1.0)
    committed_there = _inputs(round_, "honest", claimed_theta=moved, work=False)
    at_head = run_checks(build_model("tiny", 0), replace(committed_there, start=moved), Tolerances())
    assert at_head.metrics["head_start"] == 1.0 and at_head.metrics["first_loss_gap"] < 1e-5
    assert at_head.verdict == "pass", at_head.reason
    at_theta = run_checks(build_model("tiny", 0), committed_there, Tolerances())  # the same losses, claimed at θ
    assert at_theta.verdict == "fail" and "first batch" in at_theta.reason, at_theta.metrics["first_loss_gap"]
    unknown = run_checks(build_model("tiny", 0), replace(committed_there, start=None), Tolerances())
    assert unknown.verdict == "fail" and "head start" in unknown.reason and unknown.metrics["head_unknown"] == 1.0


def test_noise_and_negated_updates_are_no_descent_directions(round_):
    v = round_[2]["honest"]
    noise = torch.randn(v.numel(), generator=torch.Generator().manual_seed(3))
    floor = math.log(Tolerances().min_alignment)
    for fake in (noise * (v.norm() / noise.norm()), -v):
        alone = _check(round_, "honest", vector=fake, work=False)
        assert alone.metrics["alignment"] < Tolerances().min_alignment and alone.verdict == "pass"  # one round is not enough
        result = _check(round_, "honest", vector=fake, work=False, prior_alignment=(floor, floor))
        assert result.verdict == "fail" and "not the descent of training" in result.reason, result.metrics
    honest = _check(round_, "honest", work=False, prior_alignment=(floor, 0.0, 0.0, 0.0, 0.0))
    assert honest.verdict == "pass"  # one honest round near 0 late in a run does not sink the mean


def test_scaled_updates_fail_on_norm(round_):
    v = round_[2]["honest"]
    for factor in (0.6, 1.6, 0.05, 100.0):
        result = _check(round_, "honest", vector=v * factor, work=False)
        assert result.verdict == "fail" and "norm" in result.reason


def test_norms_are_judged_among_contributions_whose_error_feedback_is_as_old(round_):
    """A node that just joined sends no unsent mass of earlier rounds: 0.42x the others' norm in a live
    swarm. Next to warm nodes only its upper bound holds; next to other newcomers both do."""
    v = round_[2]["honest"]
    joined = _check(round_, "honest", vector=v * 0.42, work=False, warm=False)
    assert joined.verdict == "pass" and joined.metrics["norm_alike"] == 0.0, joined.metrics
    assert _check(round_, "honest", vector=v * 1.6, work=False, warm=False).verdict == "fail"
    assert _check(round_, "honest", vector=v * 2.4, work=False, others_warm=False).verdict == "pass"  # the only warm one
    assert _check(round_, "honest", vector=v * 0.6, work=False, others_warm=False).verdict == "fail"
    for factor in (0.6, 1.6):  # among newcomers alike
        result = _check(round_, "honest", vector=v * factor, work=False, warm=False, others_warm=False)
        assert result.verdict == "fail" and "norm" in result.reason and result.metrics["norm_alike"] == 1.0


def test_copies_of_this_round_and_replays_of_the_last_fail(round_):
    updates = round_[2]
    copy = _check(round_, "honest", vector=updates["peer1"].clone(), work=False)
    assert copy.verdict == "fail" and "copy" in copy.reason
    replay = _check(round_, "honest", previous=[updates["honest"].clone()], work=False)
    assert replay.verdict == "fail" and "replay" in replay.reason


def test_a_run_of_short_trajectories_fails_and_one_round_does_not(round_):
    tol = Tolerances()
    high = 2 * tol.alignment_limit(tol.min_alignment_rounds)
    assert _check(round_, "honest", work=False, prior_alignment=(high,)).verdict == "pass"  # too few rounds
    result = _check(round_, "honest", work=False, prior_alignment=(high, high, high))
    assert result.verdict == "fail" and "too short a trajectory" in result.reason
    low = _check(round_, "honest", work=False, prior_alignment=(-high, -high, -high))
    assert low.verdict == "fail" and "not the descent of training" in low.reason
    assert result.metrics["prior_alignment_0"] == high and result.metrics["alignment_rounds"] == 4


def test_memo_gives_the_same_bits_as_a_check_alone(round_):
    inputs = _inputs(round_, "honest")
    model = build_model("tiny", 0)
    grads = Gradients(model, inputs.theta)
    run_checks(model, _inputs(round_, "peer1"), Tolerances(), grads)  # other subjects first, sharing the memo
    shared = run_checks(model, inputs, Tolerances(), grads)
    assert shared.metrics == run_checks(build_model("tiny", 0), inputs, Tolerances()).metrics


def test_windows_replay_the_inner_loops_draws():
    pages = [_page(i) for i in range(5)]
    gen = torch.Generator().manual_seed(9)
    batches = [sample_windows(pages, BATCH, SEQ, gen) for _ in range(6)]
    starts = trained_starts([p.shape[0] for p in pages], 9, 6, BATCH, SEQ)
    drawn = {(i, s) for i, found in enumerate(starts) for s in found}
    for batch in batches:
        for row in batch.numpy():
            assert any(np.array_equal(row, pages[i][s : s + SEQ + 1]) for i, s in drawn)
    draw = Draw(b"r" * 32, 1, "v", b"b" * 32, "s")
    windows = trained_windows(pages, 9, 6, BATCH, SEQ, draw)
    assert all(any(np.array_equal(w, b) for batch in batches for b in batch.numpy()) for w in windows.numpy())
    rows, first = first_rows(pages, 9, BATCH, SEQ, 2, draw)
    assert [first[k].tolist() for k in range(2)] == [batches[0][i].tolist() for i in rows]
    other = Draw(b"r" * 32, 1, "v", b"c" * 32, "s")  # another beacon: other windows
    assert not torch.equal(windows, trained_windows(pages, 9, 6, BATCH, SEQ, other)) or math.prod(len(s) for s in starts) == 1


def test_control_pages_are_unassigned_and_seeded_by_the_beacon():
    run = b"\x07" * 32
    busy = frozenset(range(0, 100, 3))
    control = control_pages(run, 5, "verifier", b"b" * 32, 6, 200, busy)
    assert len(set(control)) == 6 and not set(control) & busy
    assert control == control_pages(run, 5, "verifier", b"b" * 32, 6, 200, busy)
    assert control != control_pages(run, 5, "verifier", b"c" * 32, 6, 200, busy)
    with pytest.raises(ValueError):
        control_pages(run, 5, "verifier", b"b" * 32, 6, 36, busy)


def test_alignment_is_not_judged_when_the_round_does_not_descend(round_):
    """Late in a run that overfits its pages the updates stop descending on general text; a ratio to
    a median near or below 0 would fail honest work, so the round is not judged on alignment."""
    inputs = _inputs(round_, "honest", work=False)
    flipped = dataclasses.replace(inputs, others=[-v for v in inputs.others])
    result = run_checks(build_model("tiny", 0), flipped, Tolerances())
    assert result.metrics["alignment_judged"] == 0.0 and result.verdict == "pass", result.metrics
    assert _check(round_, "honest", work=False).metrics["alignment_judged"] == 1.0


def test_alignment_against_fewer_than_three_other_contributions_is_not_judged(round_):
    """A ratio to the median of one or two references is too noisy to judge: under the live fuzzer,
    such rounds drove honest running means of log ρ past the limit and banned every hotkey."""
    inputs = _inputs(round_, "honest", work=False, prior_alignment=(-1.4,) * 8)  # a running mean far off
    for few in (1, 2):
        result = run_checks(
            build_model("tiny", 0),
            dataclasses.replace(inputs, others=inputs.others[:few], others_warm=inputs.others_warm[:few]),
            Tolerances(),
        )
        assert result.metrics["alignment_judged"] == 0.0 and result.metrics["alignment_rounds"] == 8, result.metrics
    three = run_checks(
        build_model("tiny", 0), dataclasses.replace(inputs, others=inputs.others[:3], others_warm=inputs.others_warm[:3]), Tolerances()
    )
    assert three.metrics["alignment_judged"] == 1.0 and three.metrics["alignment_rounds"] == 9
    assert three.verdict == "fail" and "not the descent" in three.reason  # the limit still applies with three
