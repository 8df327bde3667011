"""Robust aggregation of a manifest's contributions: clip each to the median norm, then take
the mean weighted by the manifest's entry weights.

Every honest node must reach the same bits, so the rule is written for
reproducibility: norms are summed in float64 and each contribution's scale
(clip factor times weight) rounded to float32 before use (a last-bit
difference in a reduction cannot flip them in practice), and contributions are
accumulated in manifest order with plain elementwise float32 operations. A
node that still lands elsewhere finds out from the signed result hash and
re-syncs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
import torch


def clip_factors(vectors: Sequence[torch.Tensor]) -> list[float]:
    """Per-contribution scale that brings each norm down to the median norm."""
    norms = [float(torch.linalg.vector_norm(v.double())) for v in vectors]
    median = statistics.median(norms)
    factors = []
    for norm in norms:
        factor = 1.0 if norm <= median or norm == 0.0 else median / norm
        factors.append(float(np.float32(factor)))
    return factors


def robust_mean(vectors: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """Median-norm-clipped mean of flat float32 CPU vectors, weighted (equally if no `weights`), in the given order."""
    if not vectors:
        raise ValueError("nothing to aggregate")
    weights = [1.0] * len(vectors) if weights is None else list(weights)
    if len(weights) != len(vectors) or not all(w > 0 for w in weights):
        raise ValueError("one positive weight per contribution")
    total = torch.zeros_like(vectors[0], dtype=torch.float32, device="cpu")
    for vector, factor, weight in zip(vectors, clip_factors(vectors), weights, strict=True):
        total.add_(vector.to("cpu", torch.float32), alpha=float(np.float32(factor * weight)))
    return total.div_(sum(weights))
