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
  - work: its gain on the contributor's assigned pages, divided by the median
    gain the round's other contributions give on those same pages (the
    `work_ratio`; same pages, so page difficulty and generic learning cancel).
    Noise has a ratio near 0 and fails at once. Training on other data gives a
    ratio near 1, which one round cannot tell from honest work: it fails once
    the running mean over the subject's recent records (carried in the record
    as `prior_*` inputs, so replay needs nothing else) stays below
    `min_mean_work_ratio`. That rule has little power yet (see Tolerances).
    The gain on control pages nobody was assigned is recorded alongside;
  - copying: cosine similarity and top-k index overlap with the round's other
    contributions. Payloads are embargoed until the publish deadline and late
    announcements are ignored (see node/service.py), so nobody can copy an
    honest update in time; a near-duplicate that still shows up means two
    hotkeys colluded, and both fail;
  - staleness: the state it claims to start from must be θ_r.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from node.trainer import params
from node.trainer.inner import eval_loss

MIN_PEER_GAIN = 1e-4  # nats: below this the peers' gain is no yardstick


@dataclass(frozen=True)
class Tolerances:
    max_norm_ratio: float = 5.0  # at most this many times the round's median norm
    min_work_ratio: float = 0.5  # below this in a single round: no work at all
    # Running mean needed once `min_history` records exist. Deliberately low: with
    # heavily compressed updates of a small model, honest running means were seen
    # as low as 0.94 and training on other pages as high as 1.08 (see the notes of
    # the verification issue), so only blatant cases fail on this rule today.
    min_mean_work_ratio: float = 0.85
    min_history: int = 4
    copy_cosine: float = 0.9  # this similar to another contribution: one of the two is a copy
    replay_atol: float = 1e-4  # metrics may differ this much across machines

    def as_pairs(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in asdict(self).items()]

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, float]]) -> "Tolerances":
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
    prior_ratio_sum: float  # sum of the subject's recent work ratios in this verifier's records
    prior_count: int


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


class _Evaluator:
    def __init__(self, model: torch.nn.Module, theta: torch.Tensor, seq_len: int, windows: int, weight: float):
        self.model, self.theta, self.seq_len, self.windows, self.weight = model, theta, seq_len, windows, weight
        self.device = next(model.parameters()).device

    def loss(self, delta: torch.Tensor | None, pages: Sequence[np.ndarray]) -> float:
        state = self.theta if delta is None else self.theta - self.weight * delta
        params.load_flat(self.model, state.to(self.device))
        cut = [page[: self.windows * self.seq_len + 1] for page in pages]
        return eval_loss(self.model, cut, self.seq_len, batch_size=8, device=self.device)

    def work_ratio(self, vector: torch.Tensor, others: Sequence[torch.Tensor], pages: Sequence[np.ndarray]) -> tuple[float, float, float]:
        """(own gain, median gain of the others, ratio) on `pages`."""
        base = self.loss(None, pages)
        own = base - self.loss(vector, pages)
        peers = statistics.median([base - self.loss(v, pages) for v in others]) if others else 0.0
        # When the others do not help these pages either, the comparison says nothing: neutral.
        ratio = own / peers if peers > MIN_PEER_GAIN else 1.0
        return own, peers, ratio


def run_checks(model: torch.nn.Module, inputs: CheckInputs, seq_len: int, windows_per_page: int, tol: Tolerances) -> CheckResult:
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

    ev = _Evaluator(model, inputs.theta, seq_len, windows_per_page, weight=1.0 / (1 + len(others)))
    m["gain_own"], m["gain_peers"], m["work_ratio"] = ev.work_ratio(vector, others, inputs.assigned)
    base_control = ev.loss(None, inputs.control)
    m["gain_control"] = base_control - ev.loss(vector, inputs.control)
    m["prior_ratio_sum"] = inputs.prior_ratio_sum
    m["prior_count"] = float(inputs.prior_count)
    count = inputs.prior_count + 1
    m["mean_work_ratio"] = (inputs.prior_ratio_sum + min(m["work_ratio"], 2.0)) / count

    if inputs.stale:
        return CheckResult(m, "fail", "stale: not trained from this round's state")
    if m["norm_ratio"] > tol.max_norm_ratio:
        return CheckResult(m, "fail", f"norm {m['norm_ratio']:.1f}x the round's median")
    if m["max_cosine"] >= tol.copy_cosine:
        return CheckResult(m, "fail", f"copy: {m['max_cosine']:.3f} cosine with another contribution of the round")
    if m["work_ratio"] < tol.min_work_ratio:
        return CheckResult(m, "fail", f"no work on the assigned pages (work ratio {m['work_ratio']:.2f})")
    if count >= tol.min_history and m["mean_work_ratio"] < tol.min_mean_work_ratio:
        return CheckResult(m, "fail", f"assigned pages not learned (mean work ratio {m['mean_work_ratio']:.2f} over {count} rounds)")
    return CheckResult(m, "pass", "")
