"""Verdicts folded into per-hotkey standing: who may be gathered, and the weights set on chain."""

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
        return any(
            subject == hotkey and not ok and round_ - r <= self.ban_rounds
            for (_, subject, r), ok in self._verdicts.items()
        )

    def score(self, hotkey: str) -> float:
        """Share of passing verdicts; 0 for a hotkey nobody has checked."""
        mine = [ok for (_, subject, _), ok in self._verdicts.items() if subject == hotkey]
        return sum(mine) / len(mine) if mine else 0.0

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"pass": 0, "fail": 0})
        for (_, subject, _), ok in self._verdicts.items():
            out[subject]["pass" if ok else "fail"] += 1
        return dict(out)

    def select(self, candidates: dict[str, float], round_: int, gather_size: int, probation_slots: int) -> list[str]:
        """The gather set: unbanned checked hotkeys by score then stake, plus a few unchecked newcomers.

        `candidates` maps hotkey -> stake. Newcomers get at most `probation_slots`
        places, so a flood of fresh identities cannot crowd out checked ones.
        """
        allowed = [h for h in candidates if not self.banned(h, round_)]
        known = sorted((h for h in allowed if self.known(h)), key=lambda h: (-self.score(h), -candidates[h], h))
        newcomers = sorted((h for h in allowed if not self.known(h)), key=lambda h: (-candidates[h], h))
        chosen = known[:gather_size]
        chosen += newcomers[: min(probation_slots, gather_size - len(chosen))]
        return sorted(chosen, key=lambda h: (-candidates[h], h))
