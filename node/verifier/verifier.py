"""Verification of a round's contributions, producing signed, replayable VerificationRecords.

Runs in a worker thread with its own scratch model while the node trains the
next round. Every contribution is screened (node/verifier/checks.py: what
costs a dot product or a few rows' losses); then `samples` of those that pass,
those with the weakest evidence of work first (ties in the order the round's
beacon draws), get a work check on their trained windows. A
record is written for each work check and each failed screen: a passed screen
proves no work, so it is no verdict. A hotkey already banned by a trusted
verdict is not checked again until the ban ends.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from dataclasses import dataclass

import torch

from node.audit.store import AuditStore
from node.config import ModelSpec, TrainSpec
from node.data.corpus import Corpus
from node.outer.head_start import Head, head_lr, head_start
from node.outer.optimizer import OuterOptimizer, OuterState
from node.trainer.model import build_model
from node.verifier.alignment import Gradients
from node.verifier.checks import CheckInputs, CheckResult, Tolerances, log_alignment, run_checks
from node.verifier.scores import Scoreboard
from node.verifier.windows import Draw, control_windows, first_rows, trained_windows
from protocol import signing
from protocol.assignment import assign_pages, control_pages, train_seed, verification_targets
from protocol.messages import MAX_EVIDENCE, ContributionMeta, Evidence, ManifestEntry, Metric, VerificationRecord
from protocol.signing import Signer

log = logging.getLogger(__name__)

FORWARD, BACKWARD = 1, 3  # compute units of one window: a forward pass, a forward and backward pass


@dataclass(frozen=True)
class VerifierSettings:
    samples: int = 2  # work checks per round: 8 trained windows each; with the shared parts ~9% of a round's training
    control_pages: int = 8  # one window each, shared by every check of the round
    first_rows: int = 1  # rows of each subject's first batch whose committed losses are recomputed
    evidence_rounds: int = 8  # how far back trusted work checks are pooled
    tolerances: Tolerances = Tolerances()


@dataclass(frozen=True)
class Contribution:
    meta: ContributionMeta
    vector: torch.Tensor
    payload: bytes
    head: Head | None = None  # the payload its meta names as head start, when the verifier could get it


@dataclass(frozen=True)
class RoundInputs:
    """What every check of one round shares."""

    round: int
    base: OuterState
    base_hash: bytes
    beacon: bytes
    contributions: dict[str, Contribution]
    previous: dict[str, Contribution]  # the last round's, for replays of old updates
    control: list[int]
    control_windows: torch.Tensor
    grads: Gradients
    evidence: dict[str, tuple[Evidence, ...]]  # each subject's pooled trusted checks, read once for the round
    starts: dict[str, Gradients | None]  # each subject's start state's memo (`grads` without a head start)


class Verifier:
    def __init__(
        self,
        run_id: bytes,
        keypair: Signer,
        model: ModelSpec,
        corpus: Corpus,
        eval_pages: frozenset[int],
        pages_per_round: int,
        train: TrainSpec,
        outer: OuterOptimizer,  # the run's: a head start is rebuilt with the lr of the round it stands for
        store: AuditStore,
        settings: VerifierSettings,
    ):
        self.run_id = run_id
        self.keypair = keypair
        self.hotkey = keypair.ss58_address
        self.corpus = corpus
        self.eval_pages = eval_pages
        self.pages_per_round = pages_per_round
        self.train = train
        self.outer = outer
        self.store = store
        self.settings = settings
        self.model = build_model(model.preset, 0, vocab_size=model.vocab_size)  # scratch space: weights are overwritten per check
        self.alignment_history: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=settings.evidence_rounds))
        self.units = 0  # compute spent, in forward passes of one window

    def assigned(self, round_: int, hotkey: str) -> list[int]:
        return assign_pages(self.run_id, round_, hotkey, self.corpus.num_pages, self.pages_per_round, self.eval_pages)

    def verify_round(
        self,
        round_: int,
        base: OuterState,
        base_hash: bytes,
        beacon: bytes,
        contributions: dict[str, Contribution],
        previous: dict[str, Contribution],
        scores: Scoreboard,
    ) -> list[VerificationRecord]:
        subjects = [h for h in sorted(contributions) if h != self.hotkey and not scores.banned(h, round_)]
        if not subjects or len(contributions) < 2:
            return []
        self.store.put_state(base, base_hash, round_)
        for contribution in [*contributions.values(), *previous.values()]:  # records name them as inputs
            self.store.put_blob(contribution.payload)
            if contribution.head is not None:
                self.store.put_blob(contribution.head.payload)
        busy = set(self.eval_pages)
        for hotkey in contributions:
            busy.update(self.assigned(round_, hotkey))
        control = control_pages(
            self.run_id, round_, self.hotkey, beacon, self.settings.control_pages, self.corpus.num_pages, frozenset(busy)
        )
        windows = control_windows(self.corpus.pages(control), self.train.seq_len, Draw(self.run_id, round_, self.hotkey, beacon, ""))
        grads = Gradients(self.model, base.theta)
        evidence = {h: scores.evidence(h, round_, self.settings.evidence_rounds, MAX_EVIDENCE) for h in subjects}
        starts = {h: self._start(round_, base, grads, contributions[h]) for h in subjects}  # once a round: screen and work check share it
        shared = RoundInputs(round_, base, base_hash, beacon, contributions, previous, control, windows, grads, evidence, starts)
        screened = {s: self._check(shared, s, scores, work=False) for s in subjects}
        passed = [s for s in subjects if screened[s].verdict == "pass"]
        targets = self._targets(shared, passed, scores)
        records = []
        for subject in subjects:
            result = self._check(shared, subject, scores, work=True) if subject in targets else screened[subject]
            if result.metrics["alignment_judged"] == 1.0:
                self.alignment_history[subject].append(log_alignment(result.metrics["alignment"], self.settings.tolerances))
            if subject in targets or result.verdict == "fail":
                record = self._record(shared, subject, scores, result)
                self.store.put_record(record)
                records.append(record)
                log.info("round %d: %s -> %s %s", round_, subject[:10], record.verdict, record.reason)
        self.units += BACKWARD * grads.windows + FORWARD * grads.rows
        self.units += FORWARD * sum(g.rows for g in starts.values() if g is not None and g is not grads)
        return records

    def _targets(self, shared: RoundInputs, passed: list[str], scores: Scoreboard) -> set[str]:
        """The `samples` subjects with the weakest evidence of work (a cheater first, then newcomers,
        the proven last), ties in the beacon's order: checks go where a verdict is still open."""
        tol, r = self.settings.tolerances, shared.round
        drawn = verification_targets(self.run_id, r, self.hotkey, shared.beacon, passed, len(passed))
        evidence = {s: math.fsum(tol.work_llr(e.work_z) for e in shared.evidence[s]) for s in drawn}
        return set(sorted(drawn, key=lambda s: evidence[s])[: self.settings.samples])

    def _inputs(self, shared: RoundInputs, subject: str, scores: Scoreboard, work: bool) -> CheckInputs:
        r, s, t = shared.round, self.settings, self.train
        meta = shared.contributions[subject].meta
        tokens = self.corpus.pages(self.assigned(r, subject))
        seed = train_seed(self.run_id, r, subject)
        draw = Draw(self.run_id, r, self.hotkey, shared.beacon, subject)
        rows, first = first_rows(tokens, seed, t.batch_size, t.seq_len, s.first_rows, draw)
        claimed = tuple(meta.first_losses[i] for i in rows) if len(meta.first_losses) == t.batch_size else ()
        evidence = shared.evidence[subject]
        return CheckInputs(
            theta=shared.base.theta,
            start=None if shared.starts[subject] is None else shared.starts[subject].theta,
            vector=shared.contributions[subject].vector,
            others=[shared.contributions[h].vector for h in sorted(shared.contributions) if h != subject],
            previous=[shared.previous[h].vector for h in sorted(shared.previous)],
            control=shared.control_windows,
            first=first,
            claimed=claimed,
            trained=trained_windows(tokens, seed, t.inner_steps, t.batch_size, t.seq_len, draw) if work else None,
            stale=meta.trained_from != shared.base_hash,
            warm=subject in shared.previous,
            others_warm=tuple(h in shared.previous for h in sorted(shared.contributions) if h != subject),
            prior_alignment=tuple(self.alignment_history[subject]),
            prior_work=tuple(e.work_z for e in evidence),
        )

    def _start(self, round_: int, base: OuterState, grads: Gradients, contribution: Contribution) -> Gradients | None:
        """The memo at what the subject trained from in `round_`: θ's own, or one at θ after the head start
        its meta names (None when that is not a payload the subject announced the round before)."""
        if not contribution.meta.head_start:
            return grads
        head = contribution.head
        if head is None or head.digest != contribution.meta.head_start:
            return None
        return Gradients(self.model, head_start(base.theta, head.vector, head_lr(self.outer, round_)))

    def _check(self, shared: RoundInputs, subject: str, scores: Scoreboard, work: bool) -> CheckResult:
        inputs = self._inputs(shared, subject, scores, work)
        return run_checks(self.model, inputs, self.settings.tolerances, shared.grads, shared.starts[subject])

    def _record(self, shared: RoundInputs, subject: str, scores: Scoreboard, result: CheckResult) -> VerificationRecord:
        r, mine = shared.round, shared.contributions[subject]
        assigned = self.assigned(r, subject)
        page_digests = tuple(self.store.put_blob(self.corpus.page(p).tobytes()) for p in [*assigned, *shared.control])
        settings = [("first_rows", float(self.settings.first_rows)), ("evidence_rounds", float(self.settings.evidence_rounds))]
        record = VerificationRecord(
            run_id=self.run_id,
            round=r,
            hotkey=self.hotkey,
            subject=subject,
            payload_digest=mine.meta.digest,
            base_state_hash=shared.base_hash,
            claimed_base_hash=mine.meta.trained_from,
            head_start=mine.meta.head_start,
            codec=mine.meta.codec,
            claimed_losses=mine.meta.first_losses,
            beacon=shared.beacon,
            assigned_pages=tuple(assigned),
            control_pages=tuple(shared.control),
            page_digests=page_digests,
            compared=tuple(ManifestEntry(h, shared.contributions[h].meta.digest) for h in sorted(shared.contributions) if h != subject),
            previous=tuple(ManifestEntry(h, shared.previous[h].meta.digest) for h in sorted(shared.previous)),
            evidence=shared.evidence[subject],
            metrics=tuple(Metric(k, v) for k, v in result.metrics.items()),
            tolerances=tuple(Metric(k, v) for k, v in [*self.settings.tolerances.as_pairs(), *settings]),
            verdict=result.verdict,
            reason=result.reason,
        )
        return signing.sign(record, self.keypair)
