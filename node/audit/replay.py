"""Re-run recorded verifications from an audit store alone: no swarm, no chain, no corpus.

For each record: check its signature and every input's digest, rebuild the
same CheckInputs, run the same checks, and compare. On the machine that made
the record the metrics agree bit for bit; elsewhere they must agree within
the record's `replay_atol`, and the verdict must be the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.audit.store import EVIDENCE, RECORDS, AuditError, AuditStore, record_path
from node.data.tokenizer import token_dtype
from node.outer.head_start import head_lr, head_start
from node.outer.optimizer import OuterOptimizer
from node.trainer import params
from node.trainer.model import build_model
from node.verifier.checks import CheckInputs, Tolerances, run_checks
from node.verifier.windows import Draw, control_windows, first_rows, trained_windows
from protocol import signing
from protocol.assignment import train_seed
from protocol.compression import CompressionError, get_codec
from protocol.messages import VerificationRecord
from protocol.wire import ProtocolError


@dataclass(frozen=True)
class ReplayRow:
    digest: str
    round: int
    subject: str
    verdict: str
    replayed: str  # the replayed verdict, or "error"
    max_diff: float
    problem: str  # empty when the replay agrees

    @property
    def agrees(self) -> bool:
        return not self.problem


class Replayer:
    def __init__(self, store: AuditStore):
        self.store = store
        self.spec = store.spec()
        self.outer = OuterOptimizer.from_spec(self.spec)  # with the run's plan: a head start's lr is its round's
        self.model = build_model(self.spec.model.preset, 0, vocab_size=self.spec.model.vocab_size)
        self.numel = params.numel(self.model)
        self.codec = get_codec(self.spec.codec.codec_spec())

    def replay_all(self, round_: int | None = None, record: str | None = None) -> list[ReplayRow]:
        rows = []
        for path in self.store.record_paths(round_):
            if record is None or path.stem.startswith(record):
                rows.append(self.replay_path(path))
        return rows

    def replay_path(self, path: Path) -> ReplayRow:
        try:
            rec = self.store.read_record(path)
        except AuditError as e:
            return ReplayRow(path.stem, -1, "?", "?", "error", float("nan"), str(e))
        try:
            return self._replay(path.stem, rec)
        except (AuditError, ProtocolError, CompressionError, ValueError, KeyError, StopIteration) as e:
            return ReplayRow(path.stem, rec.round, rec.subject, rec.verdict, "error", float("nan"), f"{type(e).__name__}: {e}")

    def _replay(self, digest: str, rec: VerificationRecord) -> ReplayRow:
        signing.verify(rec, self.spec.run_id)
        if rec.codec != self.spec.codec.name:
            raise AuditError(f"record uses codec {rec.codec!r}, the run uses {self.spec.codec.name!r}")
        tolerance_pairs = [(m.name, m.value) for m in rec.tolerances]
        tol = Tolerances.from_pairs(tolerance_pairs)
        result = run_checks(self.model, self.inputs(rec, int(dict(tolerance_pairs)["first_rows"])), tol)
        recorded = {m.name: m.value for m in rec.metrics}
        if set(recorded) != set(result.metrics):
            raise AuditError(f"metrics differ in name: {sorted(set(recorded) ^ set(result.metrics))}")
        diffs = {k: abs(recorded[k] - result.metrics[k]) for k in recorded}
        worst = max(diffs, key=diffs.get)
        problem = self._evidence_problem(rec)
        if result.verdict != rec.verdict:
            problem = f"verdict {rec.verdict} replays as {result.verdict}"
        elif diffs[worst] > tol.replay_atol:
            problem = f"{worst} differs by {diffs[worst]:.3g} (tolerance {tol.replay_atol:g})"
        return ReplayRow(digest, rec.round, rec.subject, rec.verdict, result.verdict, diffs[worst], problem)

    def inputs(self, rec: VerificationRecord, rows: int) -> CheckInputs:
        """The record's CheckInputs, rebuilt from the store: the windows are derived again from the
        subject's public training seed and the record's beacon, not taken from the record."""
        t = self.spec.train
        base = self.store.state(rec.base_state_hash, self.numel)
        pages = [np.frombuffer(self.store.blob(d), dtype=token_dtype(self.spec.model.vocab_size)) for d in rec.page_digests]
        assigned, control = pages[: len(rec.assigned_pages)], pages[len(rec.assigned_pages) :]
        seed = train_seed(rec.run_id, rec.round, rec.subject)
        draw = Draw(rec.run_id, rec.round, rec.hotkey, rec.beacon, rec.subject)
        indices, first = first_rows(assigned, seed, t.batch_size, t.seq_len, rows, draw)
        claimed = tuple(rec.claimed_losses[i] for i in indices) if len(rec.claimed_losses) == t.batch_size else ()
        checked = rec.metric("work_checked") == 1.0
        warm = {e.hotkey for e in rec.previous}  # contributed the round before
        start = base.theta
        if rec.head_start:  # None: the verifier could not get the head the subject named (no blob is held)
            lr = head_lr(self.outer, rec.round)
            start = None if rec.metric("head_unknown") == 1.0 else head_start(base.theta, self._decode(rec.head_start), lr)
        return CheckInputs(
            theta=base.theta,
            start=start,
            vector=self._decode(rec.payload_digest),
            others=[self._decode(e.digest) for e in rec.compared],
            previous=[self._decode(e.digest) for e in rec.previous],
            control=control_windows(control, t.seq_len, Draw(rec.run_id, rec.round, rec.hotkey, rec.beacon, "")),
            first=first,
            claimed=claimed,
            trained=trained_windows(assigned, seed, t.inner_steps, t.batch_size, t.seq_len, draw) if checked else None,
            stale=rec.claimed_base_hash != rec.base_state_hash,
            warm=rec.subject in warm,
            others_warm=tuple(e.hotkey in warm for e in rec.compared),
            prior_alignment=prior_alignment(rec),
            prior_work=tuple(e.work_z for e in rec.evidence),
        )

    def _decode(self, digest: bytes):
        return self.codec.decode(self.store.blob(digest), self.numel)

    def _evidence_problem(self, rec: VerificationRecord) -> str:
        """A pooled record the store holds must say what the evidence says it said."""
        for item in rec.evidence:
            for folder in (RECORDS, EVIDENCE):
                path = record_path(self.store.root, folder, item.round, item.record)
                if path.exists():
                    held = self.store.read_record(path)
                    if held.subject != rec.subject or held.metric("work_z") != item.work_z:
                        return f"evidence {item.record.hex()[:16]} does not match the record it names"
        return ""


def format_rows(rows: list[ReplayRow]) -> str:
    lines = [f"{'record':<16} {'round':>5} {'subject':<12} {'verdict':<7} {'replayed':<8} {'max_diff':>9}  problem"]
    for r in rows:
        lines.append(
            f"{r.digest[:16]:<16} {r.round:>5} {r.subject[:12]:<12} {r.verdict:<7} {r.replayed:<8} {r.max_diff:>9.2e}  {r.problem}"
        )
    return "\n".join(lines)


def prior_alignment(rec: VerificationRecord) -> tuple[float, ...]:
    """The verifier's earlier log alignments of the subject, as the record states them (an input of the verdict)."""
    count = sum(1 for m in rec.metrics if m.name.startswith("prior_alignment_"))
    if count > int({m.name: m.value for m in rec.tolerances}.get("evidence_rounds", 0)):
        raise AuditError(f"record claims {count} prior alignments")
    try:
        return tuple(rec.metric(f"prior_alignment_{i}") for i in range(count))
    except StopIteration:
        raise AuditError("record lacks a prior alignment it counts") from None
