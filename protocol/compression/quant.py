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
decoders check exactly that.

Encoding runs with torch ops on the values' device and gives the same bytes on
every device: the sums behind the means are exact integer sums, which no
reduction order can change. Each magnitude is first rounded to a fixed point
scaled to its group's largest, ``round(m * 2**(P - e))`` where ``2**e`` is the
smallest power of two above the group's largest magnitude and ``P`` leaves the
group's sum room in an int64. That rounding moves a mean by at most
``2**(e - P)`` (about 1e-15 of the largest magnitude), far below a binary16
level's own rounding. (float64 sums, the first version, depend on the order of
a device's reduction.)
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CompressionError

__all__ = ["levels_per_group", "quantize", "dequantize", "check_levels"]

_FP16_MAX = 65504.0


def levels_per_group(value_bits: int) -> int:
    return 1 if value_bits == 1 else 2


def quantize(values: torch.Tensor, group_of: torch.Tensor, ngroups: int, value_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int64 [S], levels float16 [ngroups, L]), on the device of the float32 ``values``,
    whose scale group is ``group_of`` (int64 [S], every group < ngroups non-empty)."""
    device = values.device
    m = values.abs().to(torch.float64)
    sign = (values < 0).to(torch.int64)
    count = torch.bincount(group_of, minlength=ngroups)
    largest = torch.zeros(ngroups, dtype=torch.float64, device=device).scatter_reduce(0, group_of, m, "amax")
    headroom = max(int(count.max()), 1).bit_length() if ngroups else 1
    shift = (62 - headroom) - torch.frexp(largest).exponent.to(torch.int64)  # m * 2**shift < 2**(62 - headroom)
    fixed = torch.round(m * _pow2(shift[group_of])).to(torch.int64)
    total = torch.zeros(ngroups, dtype=torch.int64, device=device).index_add_(0, group_of, fixed)
    unscale = _pow2(-shift)
    mean = total.to(torch.float64) / count.clamp(min=1) * unscale
    if value_bits == 1:
        levels = mean[:, None]
        codes = sign
    else:
        high = m > mean[group_of]
        n_hi = torch.bincount(group_of[high], minlength=ngroups)
        s_hi = torch.zeros(ngroups, dtype=torch.int64, device=device).index_add_(0, group_of[high], fixed[high])
        lo = (total - s_hi).to(torch.float64) / (count - n_hi).clamp(min=1) * unscale
        hi = torch.where(n_hi > 0, s_hi.to(torch.float64) / n_hi.clamp(min=1) * unscale, lo)
        levels = torch.stack([lo, hi], dim=1)
        codes = sign | (high.to(torch.int64) << 1)
    return codes, _to_binary16(levels.clamp(max=_FP16_MAX))


def _to_binary16(levels: torch.Tensor) -> torch.Tensor:
    """float64 levels (finite, >= 0) rounded once to the nearest binary16, ties to even.

    torch converts float64 to float16 through float32, and rounding twice can land on the other side
    of a binary16 tie (found by comparing payloads with the numpy encoder's: 4 of 300). Rounding to
    float32 *to odd* first (a float32 that is not exact gets an odd last bit) keeps the second
    rounding right: float32 has more than two bits beyond binary16's."""
    wide = levels.to(torch.float32)
    bits = wide.view(torch.int32)
    back = wide.to(torch.float64)
    even_and_inexact = ((bits & 1) == 0) & (back != levels)
    odd = torch.where(back < levels, bits + 1, bits - 1)
    return torch.where(even_and_inexact, odd, bits).view(torch.float32).to(torch.float16)


def _pow2(n: torch.Tensor) -> torch.Tensor:
    """Exactly 2.0**n (float64) for int64 ``n`` in [-1022, 1023], built from its bits: a device's pow()
    need not be exact."""
    return ((n + 1023) << 52).view(torch.float64)


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
    flat = levels.astype(np.float32).reshape(-1)
    values = flat[group_of] if value_bits == 1 else flat[2 * group_of + (codes >> 1)]
    np.negative(values, out=values, where=(codes & 1).astype(bool))
    return values
