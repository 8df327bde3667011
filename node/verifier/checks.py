"""The checks behind a VerificationRecord, as one deterministic function of its inputs.

The node calls `run_checks` while verifying; `gradswarm audit replay` calls it
again on the stored inputs. Nothing here reads the network, the clock or a
random generator, so the same inputs give the same metrics bit for bit on the
same machine. docs/DESIGN.md ("Verification") gives the measurements behind
every tolerance.

A contribution Δ is screened on what costs almost nothing, then, for the
subjects the beacon draws, checked for work on its data:
  - stale: the state it claims to start from must be θ_r;
  - first batch: the node committed to each row's loss at the first inner
    step, which starts at θ_r; a verifier recomputes a few rows. Training from
    another state (or not at all) shows at once;
  - norm: within a band around the round's median norm (scaled updates),
    among contributions whose error feedback is as old: a node that did not
    contribute the round before (it just joined) sends no unsent mass from
    earlier rounds, and its honest norm was 0.42x that of nodes that did;
  - copies: cosine with the round's other contributions (both fail: they
    colluded, since payloads are embargoed until the reveal) and with the last
    round's (the later one fails: a replay of an old update);
  - alignment ρ: how well Δ/|Δ| lines up with the gradient of control windows
    at θ_r, against the median of the round's other contributions. Noise and
    negated updates have ρ ≈ 0 or < 0; short trajectories (fewer inner steps
    than assigned, then rescaled) stay close to the first gradient, ρ ≈ 2.
    One round is noisy, and late in a run honest ρ of one round can be near 0,
    so only the running mean of log ρ (floored) over rounds is judged;
  - work: one trained window per assigned page against the control windows,
    each as a(Δ) minus the median a(other) on the same window (page difficulty
    and the general gain of any update cancel). The Welch statistic `work_z`
    is ≈ 0 for an update that did not train on these pages and ≈ 2 for one
    that did. The verdict pools the subject's recent trusted checks (inputs of
    the record as `evidence`) in a sequential likelihood-ratio test.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from node.verifier.alignment import Gradients

NO_FIRST_LOSSES = 1e6  # the gap recorded when the subject committed to no (or too few) first-batch losses


@dataclass(frozen=True)
class Tolerances:
    norm_band: float = 1.5  # the norm must lie within [1/band, band] times the round's median (honest: 0.92-1.04)
    copy_cosine: float = 0.9  # this similar to another contribution: a copy
    first_loss_atol: float = 0.05  # nats: bf16 training against a float32 recompute differs by far less
    min_alignment: float = 0.25  # the floor of ρ in the running mean (noise ≈ 0, negated < 0)
    # log ρ of an honest node has a per-round spread and a bias of its own that persists over
    # rounds (docs/DESIGN.md): the limit on its running mean never shrinks below the bias.
    alignment_bias: float = 0.2
    alignment_spread: float = 0.2
    alignment_margin: float = 3.29  # two-sided 1e-3
    min_alignment_rounds: int = 3
    # ρ is a ratio to the median of the round's other contributions, calibrated with 8 of them: against
    # 1 or 2, honest running means of log ρ drifted to -1.4 and to ±0.5 under the live fuzzer, past the
    # limit, until every hotkey was banned (docs/DESIGN.md)
    min_alignment_references: int = 3
    # Work: a sequential test of "trained on its pages" (per-check work_z ~ N(work_effect, 1))
    # against "did not" (N(0, 1)). Each check adds its log-likelihood ratio; the subject fails when
    # the sum falls to -work_evidence, log(1/1e-3): an honest node whose mean is at least
    # work_effect reaches it with probability at most 1e-3 however long it is watched.
    work_effect: float = 1.0
    work_evidence: float = 6.9
    replay_atol: float = 1e-4  # metrics may differ this much across machines

    def as_pairs(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in asdict(self).items()]

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, float]]) -> Tolerances:
        values = dict(pairs)
        return cls(**{k: type(v)(values[k]) for k, v in asdict(cls()).items() if k in values})

    def work_llr(self, work_z: float) -> float:
        """log p(z | work) - log p(z | none), with unit variances."""
        return self.work_effect * work_z - self.work_effect**2 / 2

    def alignment_limit(self, rounds: int) -> float:
        return self.alignment_bias + self.alignment_spread * self.alignment_margin / math.sqrt(rounds)


@dataclass(frozen=True)
class CheckInputs:
    """Everything a check reads, all of it named by digest in the record."""

    theta: torch.Tensor  # the round's trained_from state θ, flat float32
    start: torch.Tensor | None  # what the subject trained from: θ, or θ after its head start; None: that cannot be rebuilt
    vector: torch.Tensor  # the subject's decoded contribution
    others: Sequence[torch.Tensor]  # the round's other contributions, in the record's order
    previous: Sequence[torch.Tensor]  # the last round's contributions
    control: torch.Tensor  # [windows, seq_len + 1] control windows
    first: torch.Tensor  # [rows, seq_len + 1] rows of the subject's first batch
    claimed: tuple[float, ...]  # the subject's committed losses of those rows
    trained: torch.Tensor | None  # [pages, seq_len + 1] trained windows; None: screened only
    stale: bool  # the contribution claims another base state than θ
    warm: bool  # the subject contributed the round before too (the record's `previous` names it)
    others_warm: tuple[bool, ...]  # the same of each of `others`
    prior_alignment: tuple[float, ...]  # log ρ of the subject in this verifier's earlier rounds
    prior_work: tuple[float, ...]  # work_z of the subject's earlier trusted checks


@dataclass(frozen=True)
class CheckResult:
    metrics: dict[str, float]
    verdict: str
    reason: str


def _welch(treated: torch.Tensor, control: torch.Tensor) -> float:
    if treated.numel() < 2 or control.numel() < 2:
        return 0.0
    se = math.sqrt(float(treated.var()) / treated.numel() + float(control.var()) / control.numel())
    return float(treated.mean() - control.mean()) / se if se > 0 else 0.0


def _relative(alignments: torch.Tensor) -> torch.Tensor:
    """Column 0 (the subject) minus the median of the other columns, per window."""
    return alignments[:, 0] - alignments[:, 1:].median(dim=1).values


def _screen(m: dict[str, float], inputs: CheckInputs, grads: Gradients, at_start: Gradients, tol: Tolerances) -> None:
    m["norm"] = grads.norm(inputs.vector)
    norms = [grads.norm(v) for v in inputs.others]
    alike = [n for n, warm in zip(norms, inputs.others_warm, strict=True) if warm == inputs.warm]
    m["warm"] = float(inputs.warm)
    m["norm_alike"] = float(bool(alike))  # 0: judged against the others, in one direction only
    median = statistics.median([m["norm"], *(alike or norms)])
    m["norm_ratio"] = m["norm"] / median if median > 0 else 1.0
    m["max_cosine"] = max((grads.cosine(inputs.vector, v) for v in inputs.others), default=0.0)
    m["max_cosine_previous"] = max((grads.cosine(inputs.vector, v) for v in inputs.previous), default=0.0)
    recomputed = at_start.losses(inputs.first) if inputs.start is not None else []
    gaps = [abs(c - r) for c, r in zip(inputs.claimed, recomputed, strict=False)]
    m["first_loss_gap"] = max(gaps) if len(gaps) == len(recomputed) and gaps else NO_FIRST_LOSSES
    general = grads.alignments(inputs.control, [inputs.vector, *inputs.others]).mean(dim=0)
    others = general[1:]
    # ρ means something only while the round's updates do descend on general text: late in a run
    # that overfits its pages they stop, and a ratio to a median near 0 would be noise.
    enough = len(others) >= max(tol.min_alignment_references, 1)
    descending = enough and float(others.median()) > 0 and int((others > 0).sum()) >= math.ceil(0.75 * len(others))
    m["alignment_judged"] = float(descending)
    m["alignment"] = float(general[0]) / float(others.median()) if descending else 1.0


def log_alignment(alignment: float, tol: Tolerances) -> float:
    """log ρ, floored at log(min_alignment): noise (ρ ≈ 0) and negated updates (ρ < 0) count as the
    floor, and one round near 0 late in a run cannot sink an honest mean alone."""
    return math.log(max(alignment, tol.min_alignment))


def _pooled(m: dict[str, float], inputs: CheckInputs, tol: Tolerances) -> None:
    current = [log_alignment(m["alignment"], tol)] if m["alignment_judged"] == 1.0 else []
    logs = [*inputs.prior_alignment, *current]
    m["alignment_rounds"] = float(len(logs))
    m["alignment_mean"] = statistics.fmean(logs) if logs else 0.0
    for i, value in enumerate(inputs.prior_alignment):
        m[f"prior_alignment_{i}"] = value
    zs = list(inputs.prior_work)
    if inputs.trained is not None:
        zs.append(m["work_z"])
    m["work_checks"] = float(len(zs))
    m["work_evidence"] = math.fsum(tol.work_llr(z) for z in zs)


def run_checks(
    model: torch.nn.Module, inputs: CheckInputs, tol: Tolerances, grads: Gradients | None = None, at_start: Gradients | None = None
) -> CheckResult:
    """Judge one contribution; `model` is scratch space of the run's architecture. `grads` memoizes
    θ's gradients for the round; `at_start` the subject's start state's first-batch losses (the
    only thing read at the start: a head start moves θ by one sparse step, and the statistics
    below are taken at θ for every subject alike)."""
    grads = grads or Gradients(model, inputs.theta)
    if at_start is None:
        at_start = grads if inputs.start is inputs.theta or inputs.start is None else Gradients(model, inputs.start)
    m: dict[str, float] = {
        "stale": float(inputs.stale),
        "head_start": float(inputs.start is not inputs.theta),
        "head_unknown": float(inputs.start is None),
        "work_checked": float(inputs.trained is not None),
    }
    _screen(m, inputs, grads, at_start, tol)
    if inputs.trained is not None and inputs.others:
        vectors = [inputs.vector, *inputs.others]
        m["work_z"] = _welch(_relative(grads.alignments(inputs.trained, vectors)), _relative(grads.alignments(inputs.control, vectors)))
    _pooled(m, inputs, tol)
    return CheckResult(m, *_verdict(m, tol))


def _norm_in_band(m: dict[str, float], tol: Tolerances) -> bool:
    """Both bounds against contributions as warm as the subject; with none, only the bound its own
    age does not push it past: a cold norm may be small next to warm ones, a warm one large."""
    low = m["norm_alike"] == 1.0 or m["warm"] == 1.0
    high = m["norm_alike"] == 1.0 or m["warm"] == 0.0
    return (not low or m["norm_ratio"] >= 1 / tol.norm_band) and (not high or m["norm_ratio"] <= tol.norm_band)


def _verdict(m: dict[str, float], tol: Tolerances) -> tuple[str, str]:
    rounds = int(m["alignment_rounds"])
    if m["stale"]:
        return "fail", "stale: not trained from this round's state"
    if m["head_unknown"]:
        return "fail", "head start: not the subject's own payload of the round before"
    if not m["first_loss_gap"] <= tol.first_loss_atol:
        return "fail", f"first batch not trained from θ_r: its loss is off by {m['first_loss_gap']:.3f}"
    if not _norm_in_band(m, tol):
        return "fail", f"norm {m['norm_ratio']:.2f}x the round's median"
    if m["max_cosine"] >= tol.copy_cosine:
        return "fail", f"copy: {m['max_cosine']:.3f} cosine with another contribution of the round"
    if m["max_cosine_previous"] >= tol.copy_cosine:
        return "fail", f"replay: {m['max_cosine_previous']:.3f} cosine with a contribution of the last round"
    if rounds >= tol.min_alignment_rounds and abs(m["alignment_mean"]) > tol.alignment_limit(rounds):
        kind = (
            "too short a trajectory (fewer inner steps than assigned)" if m["alignment_mean"] > 0 else "not the descent of training at θ_r"
        )
        return "fail", f"{kind}: mean log alignment {m['alignment_mean']:+.2f} over {rounds} rounds"
    if m["work_evidence"] <= -tol.work_evidence:
        return "fail", f"assigned pages not learned: evidence {m['work_evidence']:+.1f} over {m['work_checks']:.0f} checks"
    return "pass", ""
