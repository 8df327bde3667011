"""Collect: fetch the round's contributions until a manifest for it exists.

Every node polls the announcements (fetching each payload in the background)
and the manifests. A node that may sign (protocol/election.py) and holds θ_r
signs itself when its slot comes, or, as rank 0, as soon as every online,
chain-bound peer's contribution is in. The round ends without a manifest at
its end: then θ_{r+1} = θ_r.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from node.chain import ChainView
from node.config import OuterSpec
from node.outer.contributions import Collected, ContributionPool
from node.outer.optimizer import OuterOptimizer
from node.round.manifest import Signed, choose_entries, may_sign, sign_manifest
from node.round.states import Base, StateBook
from node.round.verify import Verification
from node.swarm.board import Board
from node.verifier.scores import Scoreboard
from protocol.election import best_manifest, manifest_signers, signer_rank, signing_time
from protocol.messages import ManifestEntry, RoundManifest
from protocol.schedule import Deadlines, RoundSchedule

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
REFUSED = "announcement or payload refused"


@dataclass
class Collector:
    board: Board
    chain: ChainView
    pool: ContributionPool
    schedule: RoundSchedule
    states: StateBook
    scores: Scoreboard
    verification: Verification
    outer_spec: OuterSpec
    outer: OuterOptimizer
    # round -> the hotkeys its manifest merged, as this node saw it: the early signer also waits for
    # these, so a DHT view of "online" that an attacker thinned out cannot make it sign without them
    merged: dict[int, frozenset[str]] = field(default_factory=dict)

    async def until_manifest(self, r: int, base: Base | None, deadlines: Deadlines) -> RoundManifest | Signed | None:
        """The round's manifest as found, or as this node signed it; None if none came before the round's end.
        Only a node that holds θ_r (`base`) may sign."""
        signers = manifest_signers(self.chain.neurons())
        rank = signer_rank(signers, self.board.keypair.ss58_address)
        neurons = {n.hotkey: n for n in self.chain.neurons()}
        excluded_all = False
        while True:
            collected, manifest = await asyncio.gather(self.pool.poll(r), self.best_manifest(r))
            if manifest is not None:
                self._merged(r, manifest)
                return manifest
            now = time.time()
            if rank is not None and base is not None and self.states.round == r:
                slot = signing_time(self.schedule, r, rank, len(signers))
                # never before the reveal: no other payload can be fetched yet (under the live fuzzer rank 0
                # signed before it, alone)
                everyone_in = rank == 0 and now >= deadlines.reveal and await self._everyone_in(collected, r)
                if may_sign(now, slot, rank, everyone_in) and collected.vectors:
                    candidates = [h for h in collected.vectors if h in neurons]
                    await self.verification.read_validators_verdicts(r, candidates, {n.hotkey for n in signers})
                    source = self.states.at(self.schedule.trained_from(r))
                    fresh = {h for h, m in collected.metas.items() if source is not None and m.trained_from == source.hash}
                    entries = choose_entries(self.scores, collected, neurons, r, self.outer_spec, fresh)
                    if entries:
                        left_out = self._left_out(collected, entries, fresh, r)
                        if left_out:  # only refused ones (a cheater's, every round): no warning
                            level = logging.INFO if set(left_out.values()) == {REFUSED} else logging.WARNING
                            log.log(level, "round %d: signing without %s", r, ", ".join(f"{h} ({why})" for h, why in left_out.items()))
                        signed = await sign_manifest(self.board, r, base, collected, entries, self.outer)
                        self._merged(r, signed.manifest)
                        return signed
                    # every contributor is banned: nothing to sign (an empty mean used to fail the round, and
                    # with it θ_{r+1}: found by the partition scenario, whose losing half was banned as stale)
                    if not excluded_all:
                        log.warning("round %d: every contribution collected is from a banned hotkey; not signing", r)
                    excluded_all = True
            if now >= deadlines.end:
                return None
            await asyncio.sleep(POLL_SECONDS)

    async def best_manifest(self, r: int) -> RoundManifest | None:
        return best_manifest(await self.board.manifests(r), r, manifest_signers(self.chain.neurons()))

    def _merged(self, r: int, manifest: RoundManifest) -> None:
        self.merged[r] = frozenset(e.hotkey for e in manifest.entries)
        for old in [k for k in self.merged if k < r - 2]:
            del self.merged[old]

    def _left_out(self, collected: Collected, entries: tuple[ManifestEntry, ...], fresh: set[str], r: int) -> dict[str, str]:
        """Why each contributor that announced, or that the last round merged, is not in `entries`: what an
        operator needs when a round merges fewer contributions than it should."""
        chosen = {e.hotkey for e in entries}
        expected = set(collected.first_seen) | self.merged.get(r - 1, frozenset())
        reasons = {}
        for hotkey in sorted(expected - chosen):
            if hotkey not in collected.first_seen:
                reasons[hotkey] = "no announcement seen"
            elif hotkey in collected.pending:
                reasons[hotkey] = "payload still being fetched"
            elif hotkey in collected.refused:
                reasons[hotkey] = REFUSED
            elif hotkey not in collected.vectors:
                reasons[hotkey] = "payload not fetched"
            elif hotkey not in fresh:
                reasons[hotkey] = "trained from another state"
            else:
                reasons[hotkey] = "not selected (score or gather size)"
        return reasons

    async def _everyone_in(self, collected: Collected, r: int) -> bool:
        """Every online, chain-bound peer's contribution is in, and every one the last round merged."""
        bindings = self.board.swarm.bindings
        live = {b.hotkey for b in await self.board.online() if await bindings.peer_of(b.hotkey) == b.peer_id}
        expected = live | self.merged.get(r - 1, frozenset())
        return bool(expected) and expected <= set(collected.vectors)
