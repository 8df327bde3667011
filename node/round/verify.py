"""Verify: check a sample of round r's contributions against θ_r while the next round trains.

At most one round is checked at a time: when a check outlasts its round, the
next round's is skipped rather than queued, so verification can never fall
further and further behind. Verdicts go into this node's scoreboard and out to
the DHT as signed records; the validators' records of the last rounds are read
back before a manifest is chosen, because a validator's stake vouches for them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from node.audit.store import AuditStore
from node.outer.contributions import ContributionPool
from node.round.states import Base
from node.swarm.board import Board
from node.verifier.scores import Scoreboard
from node.verifier.verifier import Contribution, Verifier


@dataclass
class Verification:
    verifier: Verifier
    pool: ContributionPool
    board: Board
    scores: Scoreboard
    audit: AuditStore
    audit_rounds: int
    verdicts: list[tuple[int, str, str]] = field(default_factory=list)  # (round, subject, verdict) not yet reported
    seconds: float = 0.0  # spent verifying since the last report
    _running: asyncio.Task | None = None

    def start(self, r: int, base: Base) -> None:
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._verify(r, base))

    async def _verify(self, r: int, base: Base) -> None:
        collected = self.pool.rounds.get(r)
        if collected is None:
            return
        payloads = self.pool.payloads
        contributions = {
            h: Contribution(collected.metas[h], v, payloads[collected.metas[h].digest][1])
            for h, v in collected.vectors.items()
            if collected.metas[h].digest in payloads
        }
        started = time.time()
        records = await asyncio.to_thread(self.verifier.verify_round, r, base.state, base.hash, contributions)
        self.seconds += time.time() - started
        for record in records:
            self.scores.add(record)
            self.verdicts.append((r, record.subject, record.verdict))
            await self.board.post(record)
        await asyncio.to_thread(self.audit.prune, r - self.audit_rounds)
        self.scores.forget_before(r - self.audit_rounds)

    async def read_validators_verdicts(self, r: int, subjects: list[str], validators: set[str]) -> None:
        """Records of the last two rounds by `validators` (not us) about `subjects`, into the scoreboard."""
        me = self.board.keypair.ss58_address
        pairs = [(past, subject) for past in (r - 1, r - 2) if past >= 0 for subject in subjects]
        for found in await asyncio.gather(*(self.board.verdicts(past, subject) for past, subject in pairs)):
            for record in found:
                if record.hotkey in validators and record.hotkey != me:
                    self.scores.add(record)

    def take(self) -> tuple[list[tuple[int, str, str]], float]:
        """The verdicts and seconds since the last call, for the round report."""
        taken = (self.verdicts, round(self.seconds, 3))
        self.verdicts, self.seconds = [], 0.0
        return taken
