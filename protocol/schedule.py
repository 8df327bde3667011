"""The round clock: every node derives the same round number and phase deadlines
from chain time, so no coordinator is needed to start a round.

On Bittensor, chain time is block height x 12 s since the run's start block; on
the dev chain it is seconds since its genesis. A round is split into phases:

    [start, train_end)            train H inner steps, then announce (commit to) the payload digest
    [train_end, reveal)           announcements still in flight count; nobody serves payloads yet
    [reveal, collect_end)          payloads are fetched; announcements first seen now are ignored
    [collect_end, manifest_end)    validators sign the manifest (rank i waits i slots)
    [manifest_end, end)           apply, or fall back to θ_{r+1} = θ_r

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
    end: float


@dataclass(frozen=True)
class RoundSchedule:
    genesis: float  # chain time (seconds) at which round 0 starts
    round_seconds: float
    train_fraction: float = 0.5
    reveal_fraction: float = 0.6
    collect_fraction: float = 0.75
    manifest_fraction: float = 0.9

    def __post_init__(self) -> None:
        if not (math.isfinite(self.genesis) and self.round_seconds > 0):
            raise ValueError("round_seconds must be positive and genesis finite")
        if not 0 < self.train_fraction < self.reveal_fraction < self.collect_fraction < self.manifest_fraction < 1:
            raise ValueError("phase fractions must increase strictly within (0, 1)")

    def round_at(self, now: float) -> int:
        """The round in progress at `now` (-1 before genesis)."""
        return math.floor((now - self.genesis) / self.round_seconds) if now >= self.genesis else -1

    def deadlines(self, round_: int) -> Deadlines:
        start = self.genesis + round_ * self.round_seconds
        length = self.round_seconds
        return Deadlines(
            start=start,
            train_end=start + self.train_fraction * length,
            reveal=start + self.reveal_fraction * length,
            collect_end=start + self.collect_fraction * length,
            manifest_end=start + self.manifest_fraction * length,
            end=start + length,
        )

    def manifest_slot(self, round_: int, validator_rank: int, slots: int) -> float:
        """When the validator of stake rank `validator_rank` may sign if no higher one has.

        Rank 0 signs at collect_end; the window up to manifest_end is shared out
        in `slots` equal slots, so a backup only speaks if the ones above are silent.
        """
        d = self.deadlines(round_)
        width = (d.manifest_end - d.collect_end) / max(slots, 1)
        return d.collect_end + min(validator_rank, slots - 1) * width
