"""Dense binary16 baseline (codec name ``"dense-fp16"``): 2x smaller than fp32.

Every element is clamped to the finite binary16 range and rounded to nearest
(ties to even). ``chunk`` and ``k`` of the spec are ignored.

Payload: magic ``b"GSDH"`` (4), version u8 = 1, numel u64, then ``numel``
binary16 values, little-endian; exactly ``13 + 2 * numel`` bytes. The decoder
checks magic, version, numel and the exact length before allocating, and
refuses non-finite values.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from .base import (
    CompressionError,
    NamedCodec,
    as_bytes,
    check_numel,
    check_vector,
    register_codec,
)

__all__ = ["DenseFP16Codec", "DENSE_MAGIC", "DENSE_HEADER_BYTES"]

DENSE_MAGIC = b"GSDH"
_VERSION = 1
_HEADER = struct.Struct("<4sBQ")
DENSE_HEADER_BYTES = _HEADER.size  # 13
_FP16_MAX = 65504.0


class DenseFP16Codec(NamedCodec):
    name = "dense-fp16"

    def __repr__(self) -> str:
        return "DenseFP16Codec()"

    def max_payload_bytes(self, numel: int) -> int:
        return DENSE_HEADER_BYTES + 2 * check_numel(numel)

    def encode(self, vector: torch.Tensor) -> bytes:
        with torch.no_grad():
            x = check_vector(vector)
            if not bool(torch.isfinite(x).all()):
                raise CompressionError("cannot encode a vector containing NaN or inf")
            half = x.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16).cpu().numpy()
        return _HEADER.pack(DENSE_MAGIC, _VERSION, x.numel()) + half.astype("<f2", copy=False).tobytes()

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        numel = check_numel(numel)
        payload = as_bytes(payload)
        if len(payload) < DENSE_HEADER_BYTES:
            raise CompressionError(f"payload too short for the dense-fp16 header: {len(payload)} bytes")
        magic, version, h_numel = _HEADER.unpack_from(payload, 0)
        if magic != DENSE_MAGIC:
            raise CompressionError(f"bad magic {magic!r}, expected {DENSE_MAGIC!r}")
        if version != _VERSION:
            raise CompressionError(f"unsupported dense-fp16 version {version}, expected {_VERSION}")
        if h_numel != numel:
            raise CompressionError(f"header numel {h_numel} does not match the expected {numel}")
        if len(payload) != self.max_payload_bytes(numel):
            raise CompressionError(f"payload length {len(payload)} does not match the expected {self.max_payload_bytes(numel)}")
        half = np.frombuffer(payload, dtype="<f2", count=numel, offset=DENSE_HEADER_BYTES)
        if not np.isfinite(half).all():
            bad = int(np.flatnonzero(~np.isfinite(half))[0])
            raise CompressionError(f"value {bad} is not finite")
        return torch.from_numpy(half.astype(np.float32)).to(device)


register_codec(DenseFP16Codec.name, DenseFP16Codec)
