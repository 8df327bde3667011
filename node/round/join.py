"""Join: the first round a node takes part in, after syncing to the latest signed state.

A node that starts (or restarts) mid-run walks back through the last rounds'
manifests: the newest one's signed result is the state the swarm holds. If
ours differs, it fetches that state; if no holder serves it in time, the
round loop keeps trying, one round after another.
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
    current = max(0, node.schedule.round_at(time.time()))
    for back in range(current - 1, max(-1, current - JOIN_LOOKBACK), -1):
        manifest = await node.collector.best_manifest(back)
        if manifest is None:
            continue  # a round without manifest left the state as it was
        if manifest.result_state_hash != node.states.hash:
            log.info("joining late: syncing to the state signed for round %d", back + 1)
            if not await node.sync(manifest, deadline=node.schedule.deadlines(current).end):
                return current  # still out of sync: the round loop keeps trying
        break
    node.states.adopt(node.states.state, current)
    return current
