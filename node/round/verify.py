"""Verify: check round r's contributions against θ_r while the next round trains.

Only validators verify: a verdict counts for others only when a permit holder
signs it, so anyone else's checks would be compute spent for nobody. At most
one round is checked at a time: when a check outlasts its round, the next
round's is skipped rather than queued, so verification can never fall further
and further behind. Before checking, the validators' records of the last rounds
about the round's subjects are read into the scoreboard: they are the evidence a
check pools with (node/verifier/checks.py). Verdicts go into the scoreboard and
out to the DHT as signed records.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field, replace

from node.audit.store import EVIDENCE, AuditStore
from node.outer.contributions import ContributionPool
from node.round.states import Base
from node.swarm.board import Board
from node.verifier.scores import Scoreboard
from node.verifier.verifier import Contribution, Verifier
from protocol import wire
from protocol.messages import RoundManifest

EVIDENCE_READ_ROUNDS = 2  # earlier rounds whose validators' records are read before checking


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
    units: int = 0  # compute of the last round verified, in forward passes of one window
    _running: asyncio.Task | None = None
    # held while a verification writes: it stores the inputs before the record that names them, and a
    # prune meanwhile took them for garbage (found by the live fuzzer, seed 7)
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pruned_before: int = -1  # a prune reads every record: once a round is enough

    def start(self, r: int, base: Base, manifest: RoundManifest, validators: set[str]) -> None:
        if self.board.keypair.ss58_address in validators and (self._running is None or self._running.done()):
            self._running = asyncio.create_task(self._verify(r, base, manifest, validators))

    def _contributions(self, r: int) -> dict[str, Contribution]:
        collected = self.pool.rounds.get(r)
        if collected is None:
            return {}
        payloads = self.pool.payloads
        return {
            h: Contribution(collected.metas[h], v, payloads[collected.metas[h].digest][1])
            for h, v in collected.vectors.items()
            if collected.metas[h].digest in payloads
        }

    async def _with_heads(self, r: int, contributions: dict[str, Contribution]) -> dict[str, Contribution]:
        """Each contribution with the head start payload its meta names, as its author announced it."""
        named = {h: c for h, c in contributions.items() if c.meta.head_start}
        heads = await asyncio.gather(*(self.pool.announced(r - 1, h, c.meta.head_start) for h, c in named.items()))
        return {**contributions, **{h: replace(c, head=head) for (h, c), head in zip(named.items(), heads, strict=True)}}

    async def _verify(self, r: int, base: Base, manifest: RoundManifest, validators: set[str]) -> None:
        async with self._writing:
            await self._verify_and_record(r, base, manifest, validators)

    async def _verify_and_record(self, r: int, base: Base, manifest: RoundManifest, validators: set[str]) -> None:
        contributions = await self._with_heads(r, self._contributions(r))
        if not contributions:
            return
        await self.read_validators_verdicts(r, sorted(contributions), validators, EVIDENCE_READ_ROUNDS)
        beacon = hashlib.sha256(wire.encode(manifest)).digest()  # signed after every payload was fixed
        started, units_before = time.time(), self.verifier.units
        records = await asyncio.to_thread(
            self.verifier.verify_round, r, base.state, base.hash, beacon, contributions, self._contributions(r - 1), self.scores
        )
        self.seconds += time.time() - started
        self.units = self.verifier.units - units_before
        for record in records:
            self.scores.add(record)
            self.verdicts.append((r, record.subject, record.verdict))
            await self.board.post(record)
        await self._prune(r - self.audit_rounds)

    async def forget(self, r: int) -> None:
        """Records and evidence from before the audit window of round r. Every round, verifier or not:
        a signer that does not verify still keeps the validators' records it reads."""
        self.scores.forget_before(r - self.audit_rounds)
        if not self._writing.locked():  # else the running verification prunes when it is done
            async with self._writing:
                await self._prune(r - self.audit_rounds)

    async def _prune(self, before: int) -> None:
        """The audit store's records before round `before`; only while `_writing` is held."""
        if before > self._pruned_before:
            self._pruned_before = before
            await asyncio.to_thread(self.audit.prune, before)

    async def read_validators_verdicts(self, r: int, subjects: list[str], validators: set[str], rounds: int = 2) -> None:
        """Records of the `rounds` rounds before r by `validators` (not us) about `subjects`, into the
        scoreboard, and into the audit store's evidence, so the checks that pool them can be replayed."""
        me = self.board.keypair.ss58_address
        pairs = [(past, subject) for past in range(r - rounds, r) if past >= 0 for subject in subjects]
        for found in await asyncio.gather(*(self.board.verdicts(past, subject) for past, subject in pairs)):
            for record in found:
                if record.hotkey in validators and record.hotkey != me:
                    self.scores.add(record)
                    await asyncio.to_thread(self.audit.put_record, record, EVIDENCE)

    def take(self) -> tuple[list[tuple[int, str, str]], float, int]:
        """The verdicts and seconds since the last call, and the compute units of the last round
        verified since then (0 if none), for the round report."""
        taken = (self.verdicts, round(self.seconds, 3), self.units)
        self.verdicts, self.seconds, self.units = [], 0.0, 0
        return taken
