"""Low-bit quantization of kept values, shared by the sparse codecs.

Kept values are quantized in *scale groups*: ``scale_group`` consecutive
chunks (the last group may have fewer) share one small table of magnitude
levels, stored as IEEE binary16. Let ``m`` be the magnitudes ``|v|`` of the
group's kept values (float64) and ``mu`` their mean.

* ``value_bits = 1``: one level ``L = mu``; the code of ``v`` is its sign bit
  (1 when ``v < 0``); the decoded value is ``+-L``.
* ``value_bits = 2``: two levels, one Lloyd step from the mean:
  ``lo = mean(m[m <= mu])`` and ``hi = mean(m[m > mu])`` (``hi = lo`` when no
  magnitude exceeds the mean). The code is ``sign | (m > mu) << 1``; the
  decoded value is ``+-lo`` or ``+-hi``.

Levels are clamped to the finite binary16 range and rounded to nearest, so a
valid table holds finite, non-negative (not -0.0) levels with ``lo <= hi``;
decoders check exactly that. Means are computed with ``np.bincount`` (float64
sums in element order), so encoding is deterministic.
"""

from __future__ import annotations

import numpy as np

from .base import CompressionError

__all__ = ["levels_per_group", "quantize", "dequantize", "check_levels"]

_FP16_MAX = 65504.0


def levels_per_group(value_bits: int) -> int:
    return 1 if value_bits == 1 else 2


def quantize(values: np.ndarray, group_of: np.ndarray, ngroups: int, value_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes int64 [S], levels float16 [ngroups, L]) for float32 ``values``
    whose scale group is ``group_of`` (non-decreasing ints < ngroups)."""
    v = np.asarray(values, dtype=np.float32)
    m = np.abs(v).astype(np.float64)
    sign = (v < 0).astype(np.int64)
    count = np.bincount(group_of, minlength=ngroups).astype(np.float64)
    mean = np.bincount(group_of, weights=m, minlength=ngroups) / np.maximum(count, 1.0)
    if value_bits == 1:
        levels = mean[:, None]
        codes = sign
    else:
        high = m > mean[group_of]
        n_hi = np.bincount(group_of[high], minlength=ngroups).astype(np.float64)
        s_hi = np.bincount(group_of[high], weights=m[high], minlength=ngroups)
        s_lo = np.bincount(group_of[~high], weights=m[~high], minlength=ngroups)
        n_lo = count - n_hi
        lo = s_lo / np.maximum(n_lo, 1.0)
        hi = np.where(n_hi > 0, s_hi / np.maximum(n_hi, 1.0), lo)
        levels = np.stack([lo, hi], axis=1)
        codes = sign | (high.astype(np.int64) << 1)
    levels16 = np.minimum(levels, _FP16_MAX).astype(np.float16)
    return codes, levels16


def check_levels(levels: np.ndarray) -> None:
    """Raise CompressionError unless ``levels`` [ngroups, L] (float16) is a table
    the encoder can produce: finite, non-negative, not -0.0, and lo <= hi."""
    if levels.size == 0:
        return
    bad = ~np.isfinite(levels) | np.signbit(levels)
    if bad.any():
        g = int(np.flatnonzero(bad.any(axis=1))[0])
        raise CompressionError(f"scale group {g}: levels must be finite and non-negative, got {levels[g].tolist()}")
    if levels.shape[1] == 2:
        order = levels[:, 0] > levels[:, 1]
        if order.any():
            g = int(np.flatnonzero(order)[0])
            raise CompressionError(f"scale group {g}: low level exceeds high level {levels[g].tolist()}")


def dequantize(codes: np.ndarray, levels: np.ndarray, group_of: np.ndarray, value_bits: int) -> np.ndarray:
    """float32 values for ``codes`` (ints < 2**value_bits) with checked ``levels``."""
    lv = levels.astype(np.float32)
    if value_bits == 1:
        mag = lv[group_of, 0]
    else:
        mag = lv[group_of, codes >> 1]
    return np.where((codes & 1).astype(bool), -mag, mag).astype(np.float32)
