"""Chunked DCT, then top-k with sign or 2-bit values (codec name ``"demo-dct"``).

In the spirit of DeMo / DisTrO: the flat vector is zero-padded to
``nc = ceil(n / C)`` chunks of ``C = chunk`` elements, each chunk goes through
an orthonormal DCT-II, and the ``k`` largest-magnitude coefficients of every
chunk (all ``C`` coefficients are candidates, also in the last chunk; ties to
the lower index) are kept and quantized to ``value_bits`` bits exactly as in
``sparseloco`` (``quant.py``). The payload is the ``sparseloco`` layout with
magic ``b"GSDC"`` and ``S = nc * k`` entries (indices ``< C`` everywhere).

Decoding places the dequantized coefficients and applies the orthonormal
inverse (DCT-III) per chunk in float64 on the CPU (``scipy.fft``, pocketfft),
then rounds to float32 and drops the padding. The forward transform of the
encoder runs in float64 too; only the decoder is consensus-critical, and it
is a pure function of (spec, payload, numel) for a given pocketfft.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import torch

from .base import CodecSpec, register_codec
from .sparseloco import Layout, SparseLoCoCodec

__all__ = ["DemoDCTCodec", "DCT_MAGIC"]

DCT_MAGIC = b"GSDC"


class DemoDCTCodec(SparseLoCoCodec):
    name = "demo-dct"
    magic = DCT_MAGIC
    padded = True

    def __init__(self, spec: CodecSpec) -> None:
        super().__init__(spec)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self._spec.chunk
        n = x.numel()
        nc = -(-n // c)
        rows = np.zeros((nc, c), dtype=np.float64)
        rows.reshape(-1)[:n] = x.cpu().numpy()
        coeffs = scipy.fft.dct(rows, type=2, norm="ortho", axis=1, overwrite_x=True)
        return torch.from_numpy(coeffs.astype(np.float32).reshape(-1))

    def _inverse(self, out: torch.Tensor, lay: Layout) -> torch.Tensor:
        c = self._spec.chunk
        coeffs = out.numpy().astype(np.float64).reshape(lay.nchunks, c)
        rows = scipy.fft.idct(coeffs, type=2, norm="ortho", axis=1, overwrite_x=True)
        return torch.from_numpy(rows.reshape(-1)[: lay.numel].astype(np.float32))


register_codec(DemoDCTCodec.name, DemoDCTCodec)
