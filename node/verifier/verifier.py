"""Spot-checks of a round's contributions, producing signed, replayable VerificationRecords.

Runs in a worker thread with its own scratch model while the node trains the
next round. Which contributions it checks, and on which pages, follows from
(run_id, round, own hotkey), so anyone can see that a verifier did not pick
its targets by hand.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from dataclasses import dataclass

import torch

from node.audit.store import AuditStore
from node.data.corpus import Corpus
from node.outer.optimizer import OuterState
from node.trainer.model import build_model
from node.verifier.checks import CheckInputs, LossMemo, Tolerances, run_checks
from protocol import signing
from protocol.assignment import (
    assign_pages,
    check_pages,
    control_pages,
    reference_order,
    verification_targets,
)
from protocol.messages import (
    ContributionMeta,
    ManifestEntry,
    Metric,
    VerificationRecord,
)
from protocol.signing import Signer

log = logging.getLogger(__name__)

HISTORY_ROUNDS = 4  # earlier specificities that inform the median check


@dataclass(frozen=True)
class VerifierSettings:
    samples: int = 2  # contributions checked per round
    pages_per_check: int = 8  # page-to-page variance dominates: more pages beat more windows per page
    windows_per_page: int = 12
    tolerances: Tolerances = Tolerances()


@dataclass(frozen=True)
class Contribution:
    meta: ContributionMeta
    vector: torch.Tensor
    payload: bytes


class Verifier:
    def __init__(
        self,
        run_id: bytes,
        keypair: Signer,
        preset: str,
        corpus: Corpus,
        eval_pages: frozenset[int],
        pages_per_round: int,
        seq_len: int,
        store: AuditStore,
        settings: VerifierSettings,
    ):
        self.run_id = run_id
        self.keypair = keypair
        self.hotkey = keypair.ss58_address
        self.corpus = corpus
        self.eval_pages = eval_pages
        self.pages_per_round = pages_per_round
        self.seq_len = seq_len
        self.store = store
        self.settings = settings
        self.model = build_model(preset, 0)  # scratch space: weights are overwritten per check
        self.history: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=HISTORY_ROUNDS))

    def assigned(self, round_: int, hotkey: str) -> list[int]:
        return assign_pages(self.run_id, round_, hotkey, self.corpus.num_pages, self.pages_per_round, self.eval_pages)

    def verify_round(
        self, round_: int, base: OuterState, base_hash: bytes, contributions: dict[str, Contribution]
    ) -> list[VerificationRecord]:
        targets = verification_targets(self.run_id, round_, self.hotkey, list(contributions), self.settings.samples)
        if not targets:
            return []
        self.store.put_state(base, base_hash, round_)
        for contribution in contributions.values():  # every record names all of them as inputs
            self.store.put_blob(contribution.payload)
        busy = set(self.eval_pages)
        for hotkey in contributions:
            busy.update(self.assigned(round_, hotkey))
        control = control_pages(self.run_id, round_, self.hotkey, self.settings.pages_per_check, self.corpus.num_pages, frozenset(busy))
        control_tokens = self.corpus.pages(control)  # one list for the round: the memo knows it by identity
        memo = LossMemo()
        records = []
        for subject in targets:
            record = self._check(round_, base, base_hash, subject, contributions, control, control_tokens, memo)
            self.store.put_record(record)
            records.append(record)
            log.info("round %d: %s -> %s %s", round_, subject[:10], record.verdict, record.reason)
        return records

    def _check(
        self,
        r: int,
        base: OuterState,
        base_hash: bytes,
        subject: str,
        contributions: dict[str, Contribution],
        control: list[int],
        control_tokens: list,
        memo: LossMemo,
    ) -> VerificationRecord:
        s = self.settings
        mine = contributions[subject]
        # Seeded order: the first `reference_peers` are the yardstick of the work metrics.
        others = reference_order(self.run_id, r, self.hotkey, subject, [h for h in contributions if h != subject])
        vectors = [contributions[h].vector for h in others]
        assigned = check_pages(self.run_id, r, self.hotkey, subject, self.assigned(r, subject), s.pages_per_check)
        history = self.history[subject]
        inputs = CheckInputs(
            theta=base.theta,
            vector=mine.vector,
            others=vectors,
            assigned=self.corpus.pages(assigned),
            control=control_tokens,
            stale=mine.meta.base_state_hash != base_hash,
            prior_specificities=tuple(history),
        )
        result = run_checks(self.model, inputs, self.seq_len, s.windows_per_page, s.tolerances, memo)
        if result.metrics["specificity_judged"]:
            history.append(result.metrics["specificity"])

        page_digests = tuple(self.store.put_blob(self.corpus.page(p).tobytes()) for p in [*assigned, *control])
        record = VerificationRecord(
            run_id=self.run_id,
            round=r,
            hotkey=self.hotkey,
            subject=subject,
            payload_digest=mine.meta.digest,
            base_state_hash=base_hash,
            claimed_base_hash=mine.meta.base_state_hash,
            codec=mine.meta.codec,
            assigned_pages=tuple(assigned),
            control_pages=tuple(control),
            page_digests=page_digests,
            compared=tuple(ManifestEntry(h, contributions[h].meta.digest) for h in others),
            metrics=tuple(Metric(k, v) for k, v in result.metrics.items()),
            tolerances=tuple(Metric(k, v) for k, v in [*s.tolerances.as_pairs(), ("windows_per_page", float(s.windows_per_page))]),
            verdict=result.verdict,
            reason=result.reason,
        )
        return signing.sign(record, self.keypair)
