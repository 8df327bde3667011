"""Publish: the payload is kept on disk and in the pool, and its signed announcement goes out.

The announcement (ContributionMeta) commits to the payload's digest and names
the state it was trained from. Peers fetch the bytes themselves after the
reveal time (node/outer/contributions.py). After the round, the node announces
the state it holds for the next one, so that peers who need it know whom to ask.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from node.fsutil import atomic_write
from node.outer.contributions import ContributionPool
from node.outer.head_start import Head
from node.round.states import Base
from node.swarm.board import Board
from protocol.messages import ContributionMeta, StateAnnouncement

PAYLOAD_FILE_ROUNDS = 32  # own payloads stay on disk this long (what was published, for later inspection)


@dataclass(frozen=True)
class Announcement:
    """What a payload's announcement says besides the payload's own digest and size."""

    source: Base  # the state it was trained from
    head_start: bytes  # the digest of the own payload whose outer step was taken first, or empty
    codec: str
    first_losses: tuple[float, ...]


async def publish(board: Board, pool: ContributionPool, payload_dir: Path, r: int, payload: bytes, said: Announcement) -> ContributionMeta:
    digest = hashlib.sha256(payload).digest()
    await asyncio.to_thread(atomic_write, payload_dir / f"{r}-{digest.hex()}.bin", payload)
    meta = ContributionMeta(
        run_id=board.run_id,
        round=r,
        hotkey=board.keypair.ss58_address,
        peer_id=board.swarm.peer_id,
        digest=digest,
        nbytes=len(payload),
        codec=said.codec,
        trained_from=said.source.hash,
        head_start=said.head_start,
        first_losses=said.first_losses,
    )
    pool.add_own(meta, payload)
    return await board.post(meta)


def own_head(pool: ContributionPool, r: int, hotkey: str) -> Head | None:
    """This node's own round-r payload, if it published one: round r+1's head start."""
    collected = pool.rounds.get(r)
    meta = collected.metas.get(hotkey) if collected is not None else None
    if meta is None or meta.digest not in pool.payloads:
        return None
    return Head(meta.digest, pool.payloads[meta.digest][1], collected.vectors[hotkey])


async def announce(board: Board, held: Base) -> None:
    """Say which state we hold for round `held.round`."""
    announcement = StateAnnouncement(
        run_id=board.run_id, round=held.round, hotkey=board.keypair.ss58_address, peer_id=board.swarm.peer_id, state_hash=held.hash
    )
    await board.post(announcement)


def prune_payload_files(payload_dir: Path, before_round: int) -> None:
    for path in payload_dir.glob("*.bin"):
        round_text = path.name.split("-", 1)[0]
        if round_text.isdigit() and int(round_text) < before_round - PAYLOAD_FILE_ROUNDS:
            path.unlink(missing_ok=True)
