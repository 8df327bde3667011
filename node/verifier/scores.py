"""Verdicts folded into per-hotkey standing: whose contributions a manifest may name, and the weights set on chain."""

from __future__ import annotations

from collections import defaultdict

from protocol.messages import VerificationRecord


class Scoreboard:
    """Verdicts from trusted verifiers (this node and the validators), one per (verifier, subject, round)."""

    def __init__(self, ban_rounds: int = 16):
        self.ban_rounds = ban_rounds  # a failing verdict keeps a hotkey out of manifests this long
        self._verdicts: dict[tuple[str, str, int], bool] = {}

    def forget_before(self, round_: int) -> None:
        """Drop verdicts on rounds before `round_`, so a long-lived node's memory stays bounded."""
        self._verdicts = {key: ok for key, ok in self._verdicts.items() if key[2] >= round_}

    def add(self, record: VerificationRecord) -> None:
        self._verdicts[(record.hotkey, record.subject, record.round)] = record.verdict == "pass"

    def known(self, hotkey: str) -> bool:
        return any(subject == hotkey for _, subject, _ in self._verdicts)

    def banned(self, hotkey: str, round_: int) -> bool:
        return any(subject == hotkey and not ok and round_ - r <= self.ban_rounds for (_, subject, r), ok in self._verdicts.items())

    def score(self, hotkey: str) -> float:
        """Share of passing verdicts; 0 for a hotkey nobody has checked."""
        mine = [ok for (_, subject, _), ok in self._verdicts.items() if subject == hotkey]
        return sum(mine) / len(mine) if mine else 0.0

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"pass": 0, "fail": 0})
        for (_, subject, _), ok in self._verdicts.items():
            out[subject]["pass" if ok else "fail"] += 1
        return dict(out)
