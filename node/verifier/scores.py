"""Verdicts folded into per-hotkey standing: whose contributions a manifest may name, the weights set on
chain, and the evidence a new check pools with."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from protocol import wire
from protocol.messages import Evidence, VerificationRecord


def record_digest(record: VerificationRecord) -> bytes:
    """What a record is known by (the audit store's file name, an Evidence's reference)."""
    return hashlib.sha256(wire.encode(record)).digest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    work_z: float | None  # None when the record made no work check
    digest: bytes
    stale: bool = False  # failed only for its base: not merged (node/round/collect.py), but not banned


class Scoreboard:
    """Verdicts from trusted verifiers (this node and the validators), one per (verifier, subject, round)."""

    def __init__(self, ban_rounds: int = 16):
        self.ban_rounds = ban_rounds  # a failing verdict keeps a hotkey out of manifests this long
        self._verdicts: dict[tuple[str, str, int], Verdict] = {}

    def forget_before(self, round_: int) -> None:
        """Drop verdicts on rounds before `round_`, so a long-lived node's memory stays bounded."""
        self._verdicts = {key: v for key, v in self._verdicts.items() if key[2] >= round_}

    def add(self, record: VerificationRecord) -> None:
        checked = any(m.name == "work_checked" and m.value == 1.0 for m in record.metrics)
        work = record.metric("work_z") if checked else None
        stale = any(m.name == "stale" and m.value == 1.0 for m in record.metrics)
        self._verdicts[(record.hotkey, record.subject, record.round)] = Verdict(
            record.verdict == "pass", work, record_digest(record), stale
        )

    def known(self, hotkey: str) -> bool:
        return any(subject == hotkey for _, subject, _ in self._verdicts)

    def banned(self, hotkey: str, round_: int) -> bool:
        """A failing verdict bans for ban_rounds, except one for a base that is not the verifier's θ: after a
        partition heals, each half's validators see the other half's honest work as stale (partition
        scenario: every hotkey was banned and nothing was merged for 16 rounds). A stale contribution is
        never merged anyway: the signer leaves out whatever was not trained from its own state."""
        return any(
            subject == hotkey and not v.ok and not v.stale and round_ - r <= self.ban_rounds
            for (_, subject, r), v in self._verdicts.items()
        )

    def score(self, hotkey: str) -> float:
        """Share of passing verdicts; 0 for a hotkey nobody has checked."""
        mine = [v.ok for (_, subject, _), v in self._verdicts.items() if subject == hotkey]
        return sum(mine) / len(mine) if mine else 0.0

    def evidence(self, subject: str, before_round: int, rounds: int, limit: int) -> tuple[Evidence, ...]:
        """The subject's trusted work checks of rounds [before_round - rounds, before_round), newest last,
        at most `limit` of them: the inputs a new check pools with."""
        found = sorted(
            (r, v.digest, v.work_z)
            for (_, s, r), v in self._verdicts.items()
            if s == subject and v.work_z is not None and before_round - rounds <= r < before_round
        )
        return tuple(Evidence(record=d, round=r, work_z=z) for r, d, z in found[-limit:])

    def received(self, hotkey: str) -> list[tuple[int, str, str]]:
        """(round, verifier, verdict) of the verdicts others reached about `hotkey`, oldest round first."""
        mine = ((r, v, "pass" if x.ok else "fail") for (v, s, r), x in self._verdicts.items() if s == hotkey and v != hotkey)
        return sorted(mine)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"pass": 0, "fail": 0})
        for (_, subject, _), v in self._verdicts.items():
            out[subject]["pass" if v.ok else "fail"] += 1
        return dict(out)
