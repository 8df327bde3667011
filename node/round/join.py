"""Join: the first round a node takes part in, after syncing to the latest settled state.

A node that starts (or restarts) mid-run walks back through the manifests of
the rounds whose exchange is over: the newest one's signed result is the state
the swarm holds. If ours differs, it fetches that state; if no holder serves it
in time, the round loop keeps trying, one round after another. With overlap,
the round before the current one is still exchanging: the node joins that
round's exchange (too late to train in it), so that it holds θ_r when round r+1
trains from it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from node.round.sync import JOIN_LOOKBACK

if TYPE_CHECKING:
    from node.service import SwarmNode

log = logging.getLogger(__name__)


async def join(node: SwarmNode) -> int:
    await node.presence.bind()
    first = node.schedule.trained_from(max(0, node.schedule.round_at(time.time())))
    for back in range(first - 1, max(-1, first - JOIN_LOOKBACK), -1):
        manifest = await node.collector.best_manifest(back)
        if manifest is None:
            continue  # a round without manifest left the state as it was
        if manifest.result_state_hash != node.states.hash:
            log.info("joining late: syncing to the state signed for round %d", back + 1)
            if not await node.sync(manifest, deadline=node.schedule.deadlines(first).collect_end):
                return first  # still out of sync: the round loop keeps trying
        break
    node.states.adopt(node.states.state, first)
    return first
