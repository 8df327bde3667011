"""The checks behind a VerificationRecord, as one deterministic function of its inputs.

The node calls `run_checks` while verifying; `gradswarm audit replay` calls
it again on the stored inputs. Nothing here reads the network, the clock or a
random generator, so the same inputs give the same metrics bit for bit on the
same machine, and a verdict can only flip across machines when a metric sits
within `replay_atol` of its threshold.

A contribution Δ = θ_r − θ_local is judged by applying it alone with the
weight it has in the round's average, θ_r − Δ/n for n contributions (a full
step of one update overshoots once training is under way), and measuring the
loss gain on pages:
  - bounds: its norm against the round's median norm (a scaled update fails);
  - work: its gain on the contributor's assigned pages A, divided by the median
    gain a seeded sample of the round's other contributions give on those pages
    (`work_ratio`). Noise, or no training at all, has a ratio near 0 and fails
    at once;
  - work on the assigned data: every update improves every page somewhat (they
    all learn the language), so what marks training on A is that A improves by
    more than control pages C that nobody was assigned. `own_log_ratio` =
    log(gain on A / gain on C) for the subject; the other contributions'
    same log ratio on the same A and C is what A vs C gives without having
    trained on A (page difficulty cancels), and `specificity` is the
    difference. Training on other pages gives a specificity near 0, honest
    work a positive one. One round is noisy, so the verdict uses the median over
    the subject's recent judged records by this verifier (a median, because one
    lucky round must not carry a cheater for several rounds; docs/DESIGN.md) (carried in the record
    as `prior_*` inputs, so replay needs nothing else). With fewer than
    `min_reference_peers` yardsticks (a round of three nodes) it is not judged;
  - copying: cosine similarity and top-k index overlap with the round's other
    contributions. Payloads are embargoed until the round's reveal time and
    announcements first seen after it are ignored (node/outer/contributions.py),
    so nobody can copy an
    honest update in time; a near-duplicate that still shows up means two
    hotkeys colluded, and both fail;
  - staleness: the state it claims to start from must be θ_r.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from node.trainer import params
from node.trainer.inner import eval_loss

MIN_GAIN = 1e-4  # nats: a gain below this says nothing about which pages an update learned
SPECIFICITY_CLIP = 1.0  # bounds what a record stores; the median over rounds ignores outliers anyway


@dataclass(frozen=True)
class Tolerances:
    max_norm_ratio: float = 5.0  # at most this many times the round's median norm
    min_work_ratio: float = 0.5  # below this in a single round: no work at all
    # Median specificity of the last judged records needed once `min_history` exist: a median,
    # because one lucky round (pages that happen to resemble the ones trained on) must not carry
    # a cheater. Honest record sequences of the demos never had a median below 0.032.
    min_median_specificity: float = 0.02
    min_history: int = 3
    # The work metrics compare against this many of the round's other contributions (the
    # first ones in the record's order, which the verifier draws by seed): each costs a
    # model evaluation per page set, so a check stays affordable however big the round is.
    reference_peers: int = 4
    min_reference_peers: int = 3  # with fewer usable yardsticks specificity is not judged (too noisy)
    copy_cosine: float = 0.9  # this similar to another contribution: one of the two is a copy
    replay_atol: float = 1e-4  # metrics may differ this much across machines

    def as_pairs(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in asdict(self).items()]

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, float]]) -> Tolerances:
        values = dict(pairs)
        return cls(**{k: type(v)(values[k]) for k, v in asdict(cls()).items() if k in values})


@dataclass(frozen=True)
class CheckInputs:
    """Everything a check reads, all of it named by digest in the record."""

    theta: torch.Tensor  # θ_r, flat float32
    vector: torch.Tensor  # the subject's decoded contribution
    others: Sequence[torch.Tensor]  # the round's other contributions, in the record's order
    assigned: Sequence[np.ndarray]  # token pages the subject was assigned
    control: Sequence[np.ndarray]  # token pages nobody was assigned
    stale: bool  # the contribution claims another base state than θ_r
    prior_specificities: tuple[float, ...]  # the subject's recent judged specificities in this verifier's records


@dataclass(frozen=True)
class CheckResult:
    metrics: dict[str, float]
    verdict: str
    reason: str


def _norm(v: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(v.double()))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = _norm(a), _norm(b)
    return float(torch.dot(a.double(), b.double())) / (na * nb) if na and nb else 0.0


def _overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of a's nonzero positions also nonzero in b: top-k index overlap."""
    nz = a != 0
    count = int(nz.sum())
    return float((nz & (b != 0)).sum()) / count if count else 0.0


def _log_ratio(on_assigned: float, on_control: float) -> float | None:
    """log(gain on A / gain on C), or None when either gain is too small to mean anything."""
    if on_assigned < MIN_GAIN or on_control < MIN_GAIN:
        return None
    return math.log(on_assigned / on_control)


class LossMemo:
    """Losses already measured this round, so a verifier checking several subjects
    evaluates each contribution on the shared control pages once.

    Keyed by object identity, so one memo must serve one θ_r only (one round of
    one verifier); it holds on to its keys, so no id is reused while it lives.
    """

    def __init__(self) -> None:
        self._losses: dict[tuple[int, int], tuple[float, object, object]] = {}

    def get(self, delta: torch.Tensor | None, pages: Sequence[np.ndarray], compute: Callable[[], float]) -> float:
        key = (id(delta), id(pages))
        if key not in self._losses:
            self._losses[key] = (compute(), delta, pages)
        return self._losses[key][0]


class _Evaluator:
    def __init__(self, model: torch.nn.Module, theta: torch.Tensor, seq_len: int, windows: int, weight: float, memo: LossMemo):
        self.model, self.theta, self.seq_len, self.windows, self.weight = model, theta, seq_len, windows, weight
        self.memo = memo
        self.device = next(model.parameters()).device

    def loss(self, delta: torch.Tensor | None, pages: Sequence[np.ndarray]) -> float:
        return self.memo.get(delta, pages, lambda: self._loss(delta, pages))

    def gain(self, delta: torch.Tensor, pages: Sequence[np.ndarray]) -> float:
        return self.loss(None, pages) - self.loss(delta, pages)

    def _loss(self, delta: torch.Tensor | None, pages: Sequence[np.ndarray]) -> float:
        state = self.theta if delta is None else self.theta - self.weight * delta
        params.load_flat(self.model, state.to(self.device))
        cut = [page[: self.windows * self.seq_len + 1] for page in pages]
        return eval_loss(self.model, cut, self.seq_len, batch_size=8, device=self.device)


def _work_metrics(ev: _Evaluator, inputs: CheckInputs, tol: Tolerances) -> dict[str, float]:
    m: dict[str, float] = {}
    m["gain_own"] = ev.gain(inputs.vector, inputs.assigned)
    m["gain_control"] = ev.gain(inputs.vector, inputs.control)
    reference = inputs.others[: tol.reference_peers]
    peers_assigned = [ev.gain(v, inputs.assigned) for v in reference]
    peers_control = [ev.gain(v, inputs.control) for v in reference]
    m["gain_peers"] = statistics.median(peers_assigned) if peers_assigned else 0.0
    # When the others do not help these pages either, the comparison says nothing: neutral.
    m["work_ratio"] = m["gain_own"] / m["gain_peers"] if m["gain_peers"] > MIN_GAIN else 1.0
    own = _log_ratio(m["gain_own"], m["gain_control"])
    peers = [r for r in map(_log_ratio, peers_assigned, peers_control) if r is not None]
    m["own_log_ratio"] = own if own is not None else 0.0
    m["peers_log_ratio"] = statistics.median(peers) if peers else 0.0
    # Not judged when the subject's own gains are too small (the work ratio judges
    # that) or too few peers are a yardstick: left out of the running median, not a guess.
    judged = own is not None and len(peers) >= tol.min_reference_peers
    m["specificity_judged"] = float(judged)
    m["specificity"] = max(-SPECIFICITY_CLIP, min(SPECIFICITY_CLIP, own - m["peers_log_ratio"])) if judged else 0.0
    return m


def run_checks(
    model: torch.nn.Module, inputs: CheckInputs, seq_len: int, windows_per_page: int, tol: Tolerances, memo: LossMemo | None = None
) -> CheckResult:
    """Judge one contribution; `model` is scratch space of the run's architecture."""
    vector, others = inputs.vector, list(inputs.others)
    m: dict[str, float] = {}
    norm = _norm(vector)
    median = statistics.median([norm] + [_norm(v) for v in others])
    m["norm"] = norm
    m["norm_ratio"] = norm / median if median > 0 else 1.0
    m["max_cosine"] = max((_cosine(vector, v) for v in others), default=0.0)
    m["max_index_overlap"] = max((_overlap(vector, v) for v in others), default=0.0)
    m["stale"] = float(inputs.stale)

    ev = _Evaluator(model, inputs.theta, seq_len, windows_per_page, weight=1.0 / (1 + len(others)), memo=memo or LossMemo())
    m.update(_work_metrics(ev, inputs, tol))
    m["prior_count"] = float(len(inputs.prior_specificities))
    for i, value in enumerate(inputs.prior_specificities):
        m[f"prior_specificity_{i}"] = value
    judged = m["specificity_judged"] == 1.0
    window = [*inputs.prior_specificities, *([m["specificity"]] if judged else [])]
    count = len(window)
    m["median_specificity"] = statistics.median(window) if window else 0.0

    if inputs.stale:
        return CheckResult(m, "fail", "stale: not trained from this round's state")
    if m["norm_ratio"] > tol.max_norm_ratio:
        return CheckResult(m, "fail", f"norm {m['norm_ratio']:.1f}x the round's median")
    if m["max_cosine"] >= tol.copy_cosine:
        return CheckResult(m, "fail", f"copy: {m['max_cosine']:.3f} cosine with another contribution of the round")
    if m["work_ratio"] < tol.min_work_ratio:
        return CheckResult(m, "fail", f"no work on the assigned pages (work ratio {m['work_ratio']:.2f})")
    if judged and count >= tol.min_history and m["median_specificity"] < tol.min_median_specificity:
        return CheckResult(m, "fail", f"assigned pages not learned (median specificity {m['median_specificity']:+.3f} over {count} rounds)")
    return CheckResult(m, "pass", "")
