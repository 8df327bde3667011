"""The round report: one JSON line per round in <data_dir>/rounds.jsonl.

The node writes it and the demo, tests and operators read it, so its fields
are spelled once, here. Fields that only some rounds have (a node that did not
train has no train loss) are None and left out of the line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RoundReport:
    round: int
    hotkey: str
    t_start: float
    t_end: float = 0.0
    # train
    train_seconds: float | None = None
    train_loss: float | None = None
    inner_steps: int | None = None
    inner_seconds: float | None = None  # wall seconds inside the inner steps
    compute_utilization: float | None = None  # inner_seconds over the round's length
    tokens_trained: int | None = None
    payload_bytes: int | None = None
    # manifest, apply or sync
    manifest_entries: int = 0
    manifest_hotkeys: list[str] = field(default_factory=list)
    manifest_signer: str | None = None
    resynced: bool | None = None  # only when the node had to sync: whether it got the signed state
    state_hash: str = ""  # of the state held after the round
    in_sync: bool = True  # it equals the manifest's signed result (or there was no manifest)
    eval_loss: float | None = None  # held-out loss of that state, on nodes that evaluate
    # traffic and verification
    upload_payload_bytes: int = 0
    upload_state_bytes: int = 0
    verdicts: list[tuple[int, str, str]] = field(default_factory=list)  # (round, subject, verdict) this node reached
    verify_seconds: float = 0.0
    # compute spent verifying this round as a share of the compute of the round's training:
    # window forward+backward passes counted as 3 forward passes
    verify_share: float | None = None
    # what the Sybil defences refused so far (cumulative), and memory
    unregistered_records: int = 0
    refused_streams: int = 0
    records_only_pushed: int = 0  # records the DHT did not give us, only a push did
    dht_rejections: dict[str, int] | None = None  # by reason; None when the DHT process did not answer
    rss_bytes: int = 0
    peak_rss_bytes: int = 0

    def to_json(self) -> str:
        fields = {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k == "manifest_signer"}
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> RoundReport:
        """Raises ValueError on a line that is not a report (e.g. one being written right now)."""
        raw = json.loads(line)
        if not isinstance(raw, dict):
            raise ValueError("a round report is a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            report = cls(**{k: v for k, v in raw.items() if k in known})
            report.verdicts = [(int(r), str(subject), str(verdict)) for r, subject, verdict in report.verdicts]
        except (TypeError, ValueError) as e:
            raise ValueError(f"not a round report: {e}") from None
        if not isinstance(report.round, int) or not isinstance(report.hotkey, str):
            raise ValueError("a round report needs an integer round and a hotkey")
        return report

    def append_to(self, path: Path) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")


def read_reports(path: Path) -> dict[int, RoundReport]:
    """Round -> report from a rounds.jsonl; lines that do not parse (one being written) are skipped."""
    reports: dict[int, RoundReport] = {}
    if not path.exists():
        return reports
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            report = RoundReport.from_json(line)
        except ValueError:
            continue
        reports[report.round] = report
    return reports
