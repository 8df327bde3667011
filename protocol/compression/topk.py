"""Chunked top-k codec with fp16 values (codec name ``"topk"``).

Selection is the chunked top-k rule of ``select.py``: ``C = spec.chunk``,
``K = spec.k``, ``n = numel``; ``F = n // C`` full chunks keep ``K`` entries
each and a partial last chunk of ``R = n % C`` elements keeps ``min(K, R)``,
so ``S(n) = F*K + min(K, R)``. Largest ``|x|`` wins, ties go to the lower
index; NaN or +-inf is refused.

Each kept value is clamped to the finite fp16 range [-65504, 65504] and
rounded to IEEE-754 binary16 (round to nearest, ties to even).

Payload layout (all integers little-endian)
-------------------------------------------
======  =================  ===============================================
offset  size               field
======  =================  ===============================================
0       4                  magic ``b"GSTK"``
4       1                  version, u8 = 1
5       4                  chunk C, u32
9       4                  k K, u32
13      8                  numel n, u64
21      2*S(n)             indices, u16 each: the index *within its chunk*
                           (0 <= i < C), chunk after chunk in order, and
                           strictly ascending within each chunk
21+2S   2*S(n)             values, IEEE binary16 each, same order as indices
======  =================  ===============================================

Total length is exactly ``21 + 4*S(n)``; :meth:`TopKCodec.max_payload_bytes`
returns it. Chunk c's entries occupy positions ``[c*K, c*K + K)`` of both
arrays (the partial chunk's ``min(K, R)`` entries come last).

Decoding
--------
The decoder accepts exactly the payloads the encoder can produce for the
given spec and numel, and raises CompressionError for anything else: header
fields must equal (magic, 1, C, K, n); the length must equal ``21 + 4*S(n)``
(checked before anything is allocated); indices must be ``< C`` (``< R`` in
the partial chunk) and strictly ascending within each chunk; values must be
finite (any finite binary16 value, including zeros and -0.0, is accepted).
The output is float32 zeros with the decoded values at their positions. Decode
is a pure function of (spec, payload, numel).
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from .base import (
    CompressionError,
    NamedCodec,
    check_numel,
    check_vector,
    register_codec,
)
from .select import select_topk

__all__ = ["TopKCodec", "TOPK_MAGIC", "TOPK_VERSION", "TOPK_HEADER_BYTES"]

TOPK_MAGIC = b"GSTK"
TOPK_VERSION = 1
_HEADER = struct.Struct("<4sBIIQ")
TOPK_HEADER_BYTES = _HEADER.size  # 21
_FP16_MAX = 65504.0


class TopKCodec(NamedCodec):
    """Chunked top-k with uint16 indices and fp16 values. See module docs."""

    name = "topk"

    def __repr__(self) -> str:
        return f"TopKCodec(chunk={self._spec.chunk}, k={self._spec.k})"

    # ------------------------------------------------------------------ sizes

    def selected_count(self, numel: int) -> int:
        """S(n): how many entries a vector of ``numel`` elements keeps."""
        numel = check_numel(numel)
        chunk, k = self._spec.chunk, self._spec.k
        full, rem = divmod(numel, chunk)
        return full * k + min(k, rem)

    def max_payload_bytes(self, numel: int) -> int:
        """The exact payload length for ``numel`` elements (this codec's
        payloads have a fixed size)."""
        return TOPK_HEADER_BYTES + 4 * self.selected_count(numel)

    # ----------------------------------------------------------------- encode

    def encode(self, vector: torch.Tensor) -> bytes:
        chunk, k = self._spec.chunk, self._spec.k
        with torch.no_grad():
            x = check_vector(vector)
            numel = x.numel()
            idx, vals = select_topk(x, chunk, k)
            if not bool(torch.isfinite(vals).all()):
                raise CompressionError("cannot encode a vector containing NaN or inf")
            vals16 = vals.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16)
            idx_np = idx.cpu().numpy().astype("<u2", copy=False)
            val_np = vals16.cpu().numpy().astype("<f2", copy=False)
        header = _HEADER.pack(TOPK_MAGIC, TOPK_VERSION, chunk, k, numel)
        return b"".join((header, idx_np.tobytes(), val_np.tobytes()))

    # ----------------------------------------------------------------- decode

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        numel = check_numel(numel)
        if isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        if not isinstance(payload, bytes):
            raise CompressionError(f"payload must be bytes, got {type(payload).__name__}")
        chunk, k = self._spec.chunk, self._spec.k
        expected = self.max_payload_bytes(numel)
        size = len(payload)
        if size < TOPK_HEADER_BYTES:
            raise CompressionError(f"payload too short for the topk header: {size} bytes, need {TOPK_HEADER_BYTES}")
        magic, version, h_chunk, h_k, h_numel = _HEADER.unpack_from(payload, 0)
        if magic != TOPK_MAGIC:
            raise CompressionError(f"bad magic {magic!r}, expected {TOPK_MAGIC!r}")
        if version != TOPK_VERSION:
            raise CompressionError(f"unsupported topk version {version}, expected {TOPK_VERSION}")
        if h_chunk != chunk:
            raise CompressionError(f"header chunk {h_chunk} does not match spec chunk {chunk}")
        if h_k != k:
            raise CompressionError(f"header k {h_k} does not match spec k {k}")
        if h_numel != numel:
            raise CompressionError(f"header numel {h_numel} does not match expected numel {numel}")
        if size != expected:
            raise CompressionError(
                f"payload length {size} does not match the expected {expected} bytes for numel={numel}, chunk={chunk}, k={k}"
            )

        full, rem = divmod(numel, chunk)
        count = full * k + min(k, rem)
        idx = np.frombuffer(payload, dtype="<u2", count=count, offset=TOPK_HEADER_BYTES)
        vals = np.frombuffer(payload, dtype="<f2", count=count, offset=TOPK_HEADER_BYTES + 2 * count)
        if not np.isfinite(vals).all():
            bad = int(np.flatnonzero(~np.isfinite(vals))[0])
            raise CompressionError(f"value {bad} is not finite ({vals[bad]})")

        idx64 = idx.astype(np.int64)
        positions: list[np.ndarray] = []
        if full:
            head = idx64[: full * k].reshape(full, k)
            if chunk < 65536 and (head >= chunk).any():
                row = int(np.flatnonzero((head >= chunk).any(axis=1))[0])
                raise CompressionError(f"chunk {row}: index out of range (must be < {chunk})")
            if k > 1:
                bad_rows = (np.diff(head, axis=1) <= 0).any(axis=1)
                if bad_rows.any():
                    row = int(np.flatnonzero(bad_rows)[0])
                    raise CompressionError(f"chunk {row}: indices are not strictly increasing")
            head += (np.arange(full, dtype=np.int64) * chunk)[:, None]
            positions.append(head.reshape(-1))
        if rem:
            tail = idx64[full * k :]
            if (tail >= rem).any():
                raise CompressionError(
                    f"chunk {full} (last, {rem} real elements): index out of range (must be < {rem}; padding is never selected)"
                )
            if tail.size > 1 and (np.diff(tail) <= 0).any():
                raise CompressionError(f"chunk {full} (last): indices are not strictly increasing")
            positions.append(tail + full * chunk)

        out = torch.zeros(numel, dtype=torch.float32, device=device)
        if count:
            pos = torch.from_numpy(np.concatenate(positions)).to(out.device)
            val = torch.from_numpy(vals.astype(np.float32)).to(out.device)
            out[pos] = val
        return out


register_codec(TopKCodec.name, TopKCodec)
