"""Apply: θ_{r+1} from θ_r and exactly the contributions a manifest names.

Every honest node runs `next_state` on the same inputs and gets the same bits:
the robust weighted mean (node/outer/aggregate.py) and the outer step, with
the round's outer lr under the run's plan (the manifest's round names it). A node
missing a named payload asks its author, then the signer; one that still
cannot build θ_{r+1}, or builds a different one, syncs the signed state
instead (node/round/sync.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import torch

from node.outer.aggregate import robust_mean
from node.outer.contributions import ContributionPool
from node.outer.optimizer import OuterOptimizer, OuterState
from protocol.messages import RoundManifest

log = logging.getLogger(__name__)


def next_state(
    outer: OuterOptimizer, state: OuterState, vectors: Sequence[torch.Tensor], weights: Sequence[float], round_: int | None = None
) -> OuterState:
    """Round `round_`'s outer step on the weighted, median-clipped mean of `vectors` (None: the peak lr,
    outside a run's rounds); `state` itself is left as it was."""
    result = state.clone()
    outer.step(result, robust_mean(vectors, weights), round_)
    return result


async def apply_manifest(pool: ContributionPool, outer: OuterOptimizer, base: OuterState, manifest: RoundManifest) -> OuterState | None:
    """θ_{r+1} as `manifest` defines it from `base`; None when a named payload cannot be obtained."""
    collected = pool.round(manifest.round)
    vectors = []
    for entry in manifest.entries:
        vector = collected.vectors.get(entry.hotkey)
        if vector is None or collected.metas[entry.hotkey].digest != entry.digest:
            vector = await pool.fetch_entry(entry, manifest.hotkey)
        if vector is None:
            log.warning("round %d: cannot obtain %s's payload; will sync the state instead", manifest.round, entry.hotkey)
            return None
        vectors.append(vector)
    return await asyncio.to_thread(next_state, outer, base, vectors, [e.weight for e in manifest.entries], manifest.round)
