"""Vectorized bit packing (numpy, no Python loop over elements or chunks).

Bit order is little-endian throughout: bit ``p`` of a stream is
``(stream[p >> 3] >> (p & 7)) & 1``, and a ``b``-bit field written at bit
offset ``o`` holds its least significant bit at ``o``. A stream of ``N`` bits
takes ``ceil(N / 8)`` bytes; the unused high bits of its last byte are zero
(decoders check that, so every payload has exactly one encoding).
"""

from __future__ import annotations

import numpy as np

from .base import CompressionError

__all__ = ["pack_fixed", "unpack_fixed", "stream_bits", "bits_to_bytes", "nbytes_for_bits"]


def nbytes_for_bits(nbits: int) -> int:
    return (nbits + 7) >> 3


def pack_fixed(values: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers ``values`` (each < 2**bits, 1 <= bits <= 32)
    as consecutive ``bits``-wide fields."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in [1, 32], got {bits}")
    v = np.ascontiguousarray(values, dtype="<u4").reshape(-1)
    if v.size == 0:
        return b""
    if bits == 8:
        return v.astype(np.uint8).tobytes()
    if bits == 16:
        return v.astype("<u2").tobytes()
    if bits == 12 and v.size % 2 == 0:
        # Fast path: two 12-bit fields -> three bytes.
        pair = v.reshape(-1, 2)
        word = pair[:, 0] | (pair[:, 1] << 12)  # 24 bits, little-endian
        out = np.empty((pair.shape[0], 3), dtype=np.uint8)
        out[:, 0] = word & 0xFF
        out[:, 1] = (word >> 8) & 0xFF
        out[:, 2] = word >> 16
        return out.tobytes()
    if 8 % bits == 0:
        # 1, 2 or 4 bits: several fields per byte.
        per = 8 // bits
        pad = (-v.size) % per
        if pad:
            v = np.concatenate([v, np.zeros(pad, dtype=v.dtype)])
        shifts = (np.arange(per, dtype=np.uint32) * bits)[None, :]
        return (v.reshape(-1, per) << shifts).sum(axis=1, dtype=np.uint32).astype(np.uint8).tobytes()
    # General case: through a 0/1 matrix.
    shifts = np.arange(bits, dtype=np.uint32)
    matrix = ((v[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(matrix.reshape(-1), bitorder="little").tobytes()


def unpack_fixed(buf: bytes | memoryview | np.ndarray, bits: int, count: int, offset: int = 0) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``count`` fields of ``bits`` bits starting
    at byte ``offset`` of ``buf`` (int64 array). The caller has already checked
    that ``nbytes_for_bits(count * bits)`` bytes are there; the unused bits of
    the last byte must be zero."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in [1, 32], got {bits}")
    nbytes = nbytes_for_bits(count * bits)
    raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    tail_bits = (count * bits) & 7
    if tail_bits and raw[-1] >> tail_bits:
        raise CompressionError("non-zero padding bits at the end of a packed field")
    if bits == 8:
        return raw.astype(np.int64)
    if bits == 16:
        return raw.view("<u2").astype(np.int64)
    if bits == 12 and count % 2 == 0:
        b = raw.reshape(-1, 3).astype(np.int64)
        word = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        out = np.empty((b.shape[0], 2), dtype=np.int64)
        out[:, 0] = word & 0xFFF
        out[:, 1] = word >> 12
        return out.reshape(-1)
    if 8 % bits == 0:
        per = 8 // bits
        shifts = (np.arange(per, dtype=np.int64) * bits)[None, :]
        fields = (raw.astype(np.int64)[:, None] >> shifts) & ((1 << bits) - 1)
        return fields.reshape(-1)[:count]
    matrix = np.unpackbits(raw, bitorder="little", count=count * bits).reshape(count, bits)
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    return matrix.astype(np.int64) @ weights


def bits_to_bytes(bit_positions: np.ndarray, nbits: int) -> bytes:
    """A stream of ``nbits`` bits with ones exactly at ``bit_positions``."""
    bits = np.zeros(nbits, dtype=np.uint8)
    bits[bit_positions] = 1
    return np.packbits(bits, bitorder="little").tobytes()


def stream_bits(buf: bytes | memoryview, offset: int, nbytes: int) -> np.ndarray:
    """The ``8 * nbytes`` bits (uint8 zeros and ones) of ``buf[offset:offset+nbytes]``."""
    raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)
    return np.unpackbits(raw, bitorder="little")
