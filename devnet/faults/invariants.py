"""What must hold after every fault scenario, read from what the nodes left on disk.

Files are checked with the product's own loaders (the ones a restart or an auditor uses), so "loads"
means what the node would accept. A round's reference state is the one the healthy nodes agree on;
a faulted node is back in sync from the first round after the fault whose state equals it, and stays
equal.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from node.audit.store import AuditError, AuditStore
from node.checkpoint.state import StateError, load_checkpoint, load_feedback, load_inner
from node.round.report import RoundReport


@dataclass
class FileCheck:
    checked: int = 0
    corrupt: list[str] = field(default_factory=list)  # path: why
    litter: int = 0  # temp files a killed write left (never read: not data lost)


def check_files(data_dir: Path, numel: int) -> FileCheck:
    """Every checkpoint, payload and audit entry of one node loads, or is listed as corrupt."""
    check = FileCheck()

    def attempt(path: Path, load) -> None:
        if not path.exists():
            return
        check.checked += 1
        try:
            load(path)
        except (StateError, AuditError, ValueError, KeyError, OSError) as e:
            check.corrupt.append(f"{path}: {e}")

    attempt(data_dir / "state.safetensors", lambda p: load_checkpoint(p, numel))
    attempt(data_dir / "error_feedback.safetensors", lambda p: load_feedback(p, numel))
    attempt(data_dir / "inner_optimizer.pt", load_inner)
    for path in sorted((data_dir / "payloads").glob("*.bin")):
        attempt(path, _payload_matches_name)
    store = AuditStore(data_dir / "audit")
    for path in store.record_paths():
        attempt(path, store.read_record)
    for path in sorted((data_dir / "audit" / "blobs").glob("*")):
        attempt(path, lambda p: store.blob(bytes.fromhex(p.name)))
    for path in sorted((data_dir / "audit" / "states").glob("*.st")):
        attempt(path, lambda p: store.state(bytes.fromhex(p.stem), numel))
    check.litter = sum(1 for _ in data_dir.rglob(".*.tmp"))
    return check


def _payload_matches_name(path: Path) -> None:
    digest = path.stem.split("-", 1)[1]
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        raise ValueError("content does not match its digest")


def lost_audit_inputs(data_dir: Path, reports: dict[int, RoundReport], numel: int) -> list[str]:
    """Verdicts the node reported without a stored record, and stored records missing an input."""
    store = AuditStore(data_dir / "audit")
    recorded = {(rec.round, rec.subject): rec for _, rec in store.records()}
    lost = [
        f"round {r}: verdict on {subject[:10]} has no record"
        for report in reports.values()
        for r, subject, _ in report.verdicts
        if (r, subject) not in recorded
    ]
    for (r, subject), rec in recorded.items():
        try:
            store.state(rec.base_state_hash, numel)
            for digest in rec.inputs():  # a head start the verifier could not get is not named (head_unknown)
                store.blob(digest)
        except AuditError as e:
            lost.append(f"round {r}: record on {subject[:10]}: {e}")
    return lost


def reference_hashes(reports: dict[str, dict[int, RoundReport]], healthy: list[str]) -> dict[int, str]:
    """Round -> the state hash most healthy nodes held after it (ties: none)."""
    rounds = {r for name in healthy for r in reports[name]}
    reference = {}
    for r in sorted(rounds):
        votes = Counter(reports[name][r].state_hash for name in healthy if r in reports[name])
        (best, count), *rest = votes.most_common()
        if not rest or rest[0][1] < count:
            reference[r] = best
    return reference


def merged_rounds(reports: dict[int, RoundReport], reference: dict[int, str], from_round: int = 0) -> list[int]:
    """Rounds this node ended on the reference state, with a manifest that merged contributions."""
    return [r for r, rep in sorted(reports.items()) if r >= from_round and rep.manifest_entries > 0 and reference.get(r) == rep.state_hash]


def back_in_sync(reports: dict[int, RoundReport], reference: dict[int, str], fault_end_round: int, last_round: int) -> int | None:
    """The first round from `fault_end_round` on from which the node held the reference state in every
    round up to `last_round`; None if it never did."""
    for start in range(fault_end_round, last_round + 1):
        if all(r in reports and reports[r].state_hash == reference.get(r) for r in range(start, last_round + 1)):
            return start
    return None
