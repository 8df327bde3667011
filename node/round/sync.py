"""Sync: fetch the state a manifest's signer vouched for, from anyone who holds it.

A node that missed a round, joined late, or built a different θ_{r+1} than the
signer does not need to know why: the signed result hash names the state, any
holder may serve it, and the hash check makes a lying holder harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time

from node.checkpoint.state import StateError, max_state_bytes, parse_state
from node.outer.optimizer import OuterState
from node.progress import Transfer
from node.swarm.board import Board
from node.swarm.transfer import TransferError
from protocol.messages import RoundManifest

log = logging.getLogger(__name__)

STATE_FETCH_TIMEOUT = 60.0
RETRY_SECONDS = 1.0
JOIN_LOOKBACK = 64  # rounds a joining node walks back to find the last signed state


async def fetch_signed_state(board: Board, manifest: RoundManifest, numel: int, deadline: float) -> OuterState | None:
    """θ_{r+1} whose hash `manifest` signed, or None if no holder served it before `deadline`."""
    swarm = board.swarm
    target, round_ = manifest.result_state_hash, manifest.round + 1
    while time.time() < deadline:
        holders = [a.peer_id for a in await board.announcements(round_) if a.state_hash == target]
        signer_peer = await swarm.bindings.peer_of(manifest.hotkey)
        if signer_peer is not None:
            holders.insert(0, signer_peer)
        for peer in dict.fromkeys(holders):
            if peer == swarm.peer_id:
                continue
            meter = Transfer(f"downloading the state of round {round_} from {peer.hex()[:16]}", log)
            try:
                meter.start()
                data = await swarm.fetch(peer, "state", target, max_state_bytes(numel), timeout=STATE_FETCH_TIMEOUT, progress=meter)
                meter.done(len(data))
                state = await asyncio.to_thread(parse_state, data, numel)
            except (TransferError, StateError) as e:
                log.info("state sync from %s failed: %s", peer.hex()[:16], e)
                continue
            finally:
                meter.close()  # a failed or cancelled download: the bar goes, no totals line
            if state.state_hash() == target:
                log.info("synced to the signed state of round %d", round_)
                return state
            log.warning("peer %s served a state whose hash is not the signed one", peer.hex()[:16])
        await asyncio.sleep(RETRY_SECONDS)
    return None
