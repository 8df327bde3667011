"""Vectorized bit packing, no Python loop over elements or chunks: packing in torch on the
encoder's device, unpacking in numpy on the host, where decoders check hostile payloads.

Bit order is little-endian throughout: bit ``p`` of a stream is
``(stream[p >> 3] >> (p & 7)) & 1``, and a ``b``-bit field written at bit
offset ``o`` holds its least significant bit at ``o``. A stream of ``N`` bits
takes ``ceil(N / 8)`` bytes; the unused high bits of its last byte are zero
(decoders check that, so every payload has exactly one encoding).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CompressionError

__all__ = ["pack_fields", "pack_fixed", "pack_bits", "bit_stream", "pack_varying", "unpack_fixed", "stream_bits", "nbytes_for_bits"]


def nbytes_for_bits(nbits: int) -> int:
    return (nbits + 7) >> 3


def pack_fields(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Non-negative integers ``values`` (each < 2**bits, 1 <= bits <= 32) as
    consecutive ``bits``-wide fields: a uint8 tensor on their device (encoders
    pack where the tensor lives, and only the packed bytes reach the host)."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in [1, 32], got {bits}")
    v = values.reshape(-1)
    if v.numel() == 0:
        return torch.empty(0, dtype=torch.uint8, device=v.device)
    if bits == 8:
        return v.to(torch.uint8)
    if bits == 12 and v.numel() % 2 == 0:  # two fields in three bytes
        word = v[0::2].to(torch.int32) | (v[1::2].to(torch.int32) << 12)
        return torch.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], dim=1).to(torch.uint8).reshape(-1)
    if 8 % bits == 0:  # 1, 2 or 4 bits: several fields per byte
        return _or_columns(v.to(torch.uint8), 8 // bits, bits)
    matrix = (v.to(torch.int64)[:, None] >> torch.arange(bits, device=v.device)) & 1
    return pack_bits(matrix.reshape(-1))


def pack_fixed(values: np.ndarray, bits: int) -> bytes:
    """pack_fields for a host array, as bytes: what a fuzzer or a hand-built payload needs."""
    return pack_fields(torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)), bits).numpy().tobytes()


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """A 0/1 tensor [N] as ceil(N / 8) bytes (uint8, same device), bit ``p`` at
    ``byte[p >> 3] >> (p & 7)``."""
    return _or_columns(bits.to(torch.uint8), 8, 1)


def bit_stream(positions: torch.Tensor, nbits: int) -> torch.Tensor:
    """A stream of ``nbits`` bits with ones exactly at ``positions`` (distinct; uint8 bytes, same
    device). Each one is added to its byte, with no array of single bits."""
    out = torch.zeros(nbytes_for_bits(nbits), dtype=torch.int32, device=positions.device)
    out.index_add_(0, positions >> 3, (1 << (positions & 7)).to(torch.int32))
    return out.to(torch.uint8)


def pack_varying(values: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Fields of ``widths`` bits each (0 to 17; ``values`` int64 below 2**width) back to back, low
    bit first: uint8 bytes on their device. Each field, shifted to its bit offset, spans at most
    three bytes; its pieces are added into them (the fields' bits are disjoint, so adding is OR),
    which costs three scatters instead of an array of every bit."""
    starts = torch.cumsum(widths, dim=0) - widths
    nbits = int(widths.sum())
    word = values << (starts & 7)
    byte = starts >> 3
    out = torch.zeros(nbytes_for_bits(nbits) + 3, dtype=torch.int32, device=values.device)
    for piece in range(3):
        out.index_add_(0, byte + piece, ((word >> (8 * piece)) & 0xFF).to(torch.int32))
    return out[: nbytes_for_bits(nbits)].to(torch.uint8)


def _or_columns(fields: torch.Tensor, per: int, width: int) -> torch.Tensor:
    """uint8 ``fields`` (each < 2**width), ``per`` to a byte, low field first; zero padding."""
    pad = (-fields.numel()) % per
    if pad:
        fields = torch.cat([fields, fields.new_zeros(pad)])
    rows = fields.view(-1, per)
    out = rows[:, 0].clone()
    for i in range(1, per):
        out |= rows[:, i] << (i * width)
    return out


def unpack_fixed(buf: bytes | memoryview | np.ndarray, bits: int, count: int, offset: int = 0) -> np.ndarray:
    """Inverse of :func:`pack_fields`: ``count`` fields of ``bits`` bits starting
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


def stream_bits(buf: bytes | memoryview, offset: int, nbytes: int) -> np.ndarray:
    """The ``8 * nbytes`` bits (uint8 zeros and ones) of ``buf[offset:offset+nbytes]``."""
    raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)
    return np.unpackbits(raw, bitorder="little")
