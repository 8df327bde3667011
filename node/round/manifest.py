"""Manifest: the election of the round's signer, and what the signer signs.

Who may sign and when is the protocol's rule (protocol/election.py). What goes
in is the signer's choice within the protocol's bounds: the contributions it
collected, filtered and weighted by chain standing and verdicts
(node/outer/selection.py). The signer aggregates them itself and signs the
resulting state hash too, so every other node learns at once whether it
reproduced the same θ_{r+1}.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from node.chain import Neuron
from node.config import OuterSpec
from node.outer.contributions import Collected
from node.outer.optimizer import OuterOptimizer, OuterState
from node.outer.selection import select_contributions
from node.round.apply import next_state
from node.round.states import Base
from node.swarm.board import Board
from node.verifier.scores import Scoreboard
from protocol.messages import ManifestEntry, RoundManifest

log = logging.getLogger(__name__)


def may_sign(now: float, slot: float, rank: int, everyone_in: bool) -> bool:
    """The signer of `rank` signs once its slot has come; rank 0 signs early once every
    online, chain-bound peer's contribution is in (waiting longer would gain nothing)."""
    return now >= slot or (rank == 0 and everyone_in)


@dataclass(frozen=True)
class Signed:
    manifest: RoundManifest
    state: OuterState  # θ_{r+1}, which the signer adopts without aggregating twice


def choose_entries(
    scores: Scoreboard, collected: Collected, neurons: dict[str, Neuron], r: int, outer: OuterSpec, fresh: set[str]
) -> tuple[ManifestEntry, ...]:
    """Only `fresh` hotkeys are merged: those whose announcement says it was trained from the signer's own
    state of the round (a stale one, or one from the other side of a healed partition, is left out)."""
    candidates = {h: neurons[h] for h in collected.vectors if h in neurons and h in fresh}
    chosen = select_contributions(scores, candidates, r, outer.gather_size, outer.probation_slots)
    return tuple(ManifestEntry(hotkey=h, digest=collected.metas[h].digest, weight=w) for h, w in chosen.items())


async def sign_manifest(
    board: Board, r: int, base: Base, collected: Collected, entries: tuple[ManifestEntry, ...], outer: OuterOptimizer
) -> Signed:
    vectors = [collected.vectors[e.hotkey] for e in entries]
    result = await asyncio.to_thread(next_state, outer, base.state, vectors, [e.weight for e in entries], r)
    manifest = RoundManifest(
        run_id=board.run_id,
        round=r,
        hotkey=board.keypair.ss58_address,
        base_state_hash=base.hash,
        entries=entries,
        result_state_hash=result.state_hash(),
    )
    manifest = await board.post(manifest)
    log.info("round %d: signed manifest with %d contributions", r, len(entries))
    return Signed(manifest, result)
