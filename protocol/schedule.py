"""The round clock: every node derives the same round number and phase deadlines
from chain time, so no coordinator is needed to start a round.

On Bittensor, chain time is block height x 12 s since the run's start block; on
the dev chain it is seconds since its genesis. Round r owns the window
[start_r, start_r + L). With `overlap` (the default), the exchange of round r
runs in the next round's window, while round r+1 trains, and round r trains
from θ_{r-1}, the newest state every node holds when it starts (a one-round-
delayed outer update; docs/DESIGN.md §3). Fractions are of L, from start_r:

                                   overlap   sequential
    train H inner steps              0.95       0.5      then announce (commit to) the payload digest
    reveal: payloads are served      1.05       0.6      announcements first seen later are ignored
    collect_end: validators sign     1.35       0.75     (rank i waits i slots)
    manifest_end                     1.6        0.9
    end: θ_{r+1} is settled          2.0        1.0      applied, synced, or θ_{r+1} = θ_r

Because no payload of the round is served before `reveal`, and no announcement
first seen after it counts, nobody can copy another's update in time to
announce it as their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadlines:
    start: float
    train_end: float
    reveal: float
    collect_end: float
    manifest_end: float
    end: float  # θ_{r+1} is settled by then


@dataclass(frozen=True)
class Phases:
    """Where each deadline falls, in round lengths from the round's start."""

    train: float
    reveal: float
    collect: float
    manifest: float
    end: float

    def __post_init__(self) -> None:
        if not (0 < self.train <= 1 and self.train < self.reveal < self.collect < self.manifest < self.end):
            raise ValueError("phase fractions must increase strictly, and training must end within its round")


OVERLAPPED = Phases(train=0.95, reveal=1.05, collect=1.35, manifest=1.6, end=2.0)
SEQUENTIAL = Phases(train=0.5, reveal=0.6, collect=0.75, manifest=0.9, end=1.0)


@dataclass(frozen=True)
class RoundSchedule:
    genesis: float  # chain time (seconds) at which round 0 starts
    round_seconds: float
    overlap: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.genesis) and self.round_seconds > 0):
            raise ValueError("round_seconds must be positive and genesis finite")

    @property
    def phases(self) -> Phases:
        return OVERLAPPED if self.overlap else SEQUENTIAL

    @property
    def lag(self) -> int:
        """How many rounds older than θ_r the state is that round r trains from."""
        return 1 if self.overlap else 0

    def trained_from(self, round_: int) -> int:
        """The round whose state θ round `round_`'s contributions are trained from (and checked against)."""
        return max(0, round_ - self.lag)

    def round_at(self, now: float) -> int:
        """The round whose training window holds `now` (-1 before genesis)."""
        return math.floor((now - self.genesis) / self.round_seconds) if now >= self.genesis else -1

    def deadlines(self, round_: int) -> Deadlines:
        start = self.genesis + round_ * self.round_seconds
        length, p = self.round_seconds, self.phases
        return Deadlines(
            start=start,
            train_end=start + p.train * length,
            reveal=start + p.reveal * length,
            collect_end=start + p.collect * length,
            manifest_end=start + p.manifest * length,
            end=start + p.end * length,
        )

    def manifest_slot(self, round_: int, validator_rank: int, slots: int) -> float:
        """When the validator of stake rank `validator_rank` may sign if no higher one has.

        Rank 0 signs at collect_end; the window up to manifest_end is shared out
        in `slots` equal slots, so a backup only speaks if the ones above are silent.
        """
        d = self.deadlines(round_)
        width = (d.manifest_end - d.collect_end) / max(slots, 1)
        return d.collect_end + min(validator_rank, slots - 1) * width
