"""SparseLoCo codecs: chunked top-k, low-bit values, bit-packed or entropy-coded indices.

Two codecs share one selection and one quantizer and differ only in how the
indices travel, so for the same spec they decode to bit-identical vectors:

* ``"sparseloco"``: indices bit-packed at ``log2(chunk)`` bits (12 at 4096).
* ``"sparseloco-ec"``: indices entropy-coded per chunk: Golomb-Rice coding of
  the gaps between sorted indices, the Rice parameter chosen per chunk.
  Parameter 0 *is* a bitmap of the chunk cut after its last kept index (a one
  bit per kept index, a zero bit per skipped one), so a separate bitmap mode
  could never be smaller and there is none.

Selection is the chunked top-k rule of ``select.py``: ``n = numel``,
``C = chunk``, ``K = k``; ``F = n // C`` full chunks keep ``K`` entries each,
a partial last chunk of ``R = n % C`` real elements keeps ``min(K, R)``;
largest ``|x|`` wins, ties go to the lower index; ``S(n) = F*K + min(K, R)``.
The ``nc = ceil(n / C)`` chunks form ``ng = ceil(nc / G)`` scale groups of
``G = scale_group`` chunks; kept values are quantized per group to
``value_bits`` bits (see ``quant.py``).

Wire format (integers little-endian; "packed" means the bit order of
``bitpack.py``: LSB first, fields back to back, zero padding to a byte)
--------------------------------------------------------------------------

Header, 26 bytes: magic (4: ``b"GSSL"`` or ``b"GSSE"``), version u8 = 1,
chunk u32, k u32, value_bits u8, scale_group u32, numel u64. Every field must
equal the spec and the caller's numel.

``sparseloco`` body, exact length known from (spec, n):

1. levels: ``ng * L`` binary16 (``L`` = 1 or 2 levels per group, group-major);
2. indices: ``S`` fields of ``log2(C)`` bits, packed (index within its chunk,
   chunk after chunk, strictly ascending within a chunk, ``< R`` in the
   partial chunk);
3. codes: ``S`` fields of ``value_bits`` bits, packed, same order.

``sparseloco-ec`` body: see ``sparseloco_ec.py``.

Decoding treats the payload as hostile: header fields, lengths and counts are
checked before anything proportional to them is allocated; indices must lie
in range (strict ascent is implied by non-negative gaps); levels must be
finite, non-negative and ordered. Any problem raises CompressionError. The
output is float32 zeros with the decoded values at their positions.

Sizes at 64/4096 with 2-bit values: a chunk's entries take 64 * (12 + 2) bits
= 112 bytes, i.e. 16384 / 112 = 146.3x smaller than fp32 before any scale.
One fp16 pair of levels per chunk would cost 4 more bytes (141x), so levels
are shared by ``scale_group`` chunks: 32 (one pair per 131072 values, about a
tensor's worth) keeps ``sparseloco`` at 146.1x. ``sparseloco-ec`` spends
about 7.6 bits per index instead of 12 (Rice parameter 5 or 6 for gaps
averaging 63), about 215x.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from .base import (
    CodecSpec,
    CompressionError,
    NamedCodec,
    as_bytes,
    check_numel,
    check_vector,
    register_codec,
)
from .bitpack import (
    nbytes_for_bits,
    pack_fields,
    unpack_fixed,
)
from .quant import check_levels, dequantize, levels_per_group, quantize
from .select import select_topk

__all__ = ["SparseLoCoCodec", "SPARSE_HEADER_BYTES", "SPARSELOCO_MAGIC", "SPARSELOCO_EC_MAGIC"]

SPARSELOCO_MAGIC = b"GSSL"
SPARSELOCO_EC_MAGIC = b"GSSE"
_VERSION = 1
_HEADER = struct.Struct("<4sBIIBIQ")
SPARSE_HEADER_BYTES = _HEADER.size  # 26


class Layout:
    """Sizes that follow from (spec, numel) alone."""

    def __init__(self, spec: CodecSpec, numel: int, padded: bool = False) -> None:
        c, k, g = spec.chunk, spec.k, spec.scale_group
        self.numel = numel
        self.full, self.rem = divmod(numel, c)
        self.nchunks = self.full + (1 if self.rem else 0)
        if padded:  # a transform codec: the partial chunk is a full chunk of coefficients
            self.full, self.rem = self.nchunks, 0
        self.count = self.full * k + min(k, self.rem)
        self.ngroups = -(-self.nchunks // g)
        self.nlevels = levels_per_group(spec.value_bits)
        self.level_bytes = 2 * self.ngroups * self.nlevels
        self.code_bytes = nbytes_for_bits(self.count * spec.value_bits)

    def chunk_of_entries(self, k: int) -> np.ndarray:
        """Chunk number of each kept entry (int64 [S]), for a decoder."""
        return np.minimum(np.arange(self.count, dtype=np.int64) // k, max(self.nchunks - 1, 0))

    def entry_chunks(self, k: int, device) -> torch.Tensor:
        """chunk_of_entries as a tensor on ``device``, for an encoder."""
        return (torch.arange(self.count, dtype=torch.int64, device=device) // k).clamp(max=max(self.nchunks - 1, 0))

    def chunk_sums(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """Per chunk, the sum of its kept entries' ``values`` (one row per full chunk: no scatter)."""
        head = self.full * k
        sums = values[:head].view(self.full, k).sum(dim=1, dtype=torch.int64)
        if self.count > head:
            sums = torch.cat([sums, values[head:].sum(dtype=torch.int64).reshape(1)])
        return sums

    def kept_per_chunk(self, k: int) -> np.ndarray:
        kept = np.full(self.nchunks, k, dtype=np.int64)
        if self.rem:
            kept[-1] = min(k, self.rem)
        return kept

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        lengths = np.full(self.nchunks, chunk, dtype=np.int64)
        if self.rem:
            lengths[-1] = self.rem
        return lengths


class SparseBase(NamedCodec):
    name = ""
    magic = b""
    padded = False  # True for transform codecs (see dct.py)

    def __init__(self, spec: CodecSpec) -> None:
        super().__init__(spec)
        self._index_bits = spec.chunk.bit_length() - 1

    def __repr__(self) -> str:
        s = self._spec
        return f"{type(self).__name__}(chunk={s.chunk}, k={s.k}, value_bits={s.value_bits}, scale_group={s.scale_group})"

    def selected_count(self, numel: int) -> int:
        return Layout(self._spec, check_numel(numel), self.padded).count

    # ------------------------------------------------------------ shared parts

    def _header(self, numel: int) -> bytes:
        s = self._spec
        return _HEADER.pack(self.magic, _VERSION, s.chunk, s.k, s.value_bits, s.scale_group, numel)

    def _select_quantize(self, vector: torch.Tensor):
        """(layout, indices within chunk int64 [S], codes int64 [S], levels fp16 [ng, L]), all on the
        device of what top-k selects from."""
        s = self._spec
        with torch.no_grad():
            x = check_vector(vector)
            lay = Layout(s, x.numel(), self.padded)
            idx, vals = select_topk(self._forward(x), s.chunk, s.k)
            if not bool(torch.isfinite(vals).all()):
                raise CompressionError("cannot encode a vector containing NaN or inf")
            group_of = lay.entry_chunks(s.k, vals.device) // s.scale_group
            codes, levels = quantize(vals, group_of, lay.ngroups, s.value_bits)
        return lay, idx.to(torch.int64), codes, levels

    def _payload(self, numel: int, parts: list[torch.Tensor]) -> bytes:
        """The header and the packed parts, which reach the host only here."""
        return self._header(numel) + torch.cat([p.reshape(-1) for p in parts]).cpu().numpy().tobytes()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """What top-k selects from (the identity here; a transform in dct.py)."""
        return x

    def _inverse(self, out: torch.Tensor, lay: Layout) -> torch.Tensor:
        return out

    def _check_header(self, payload: bytes, numel: int) -> None:
        s = self._spec
        if len(payload) < SPARSE_HEADER_BYTES:
            raise CompressionError(f"payload too short for the {self.name} header: {len(payload)} bytes, need {SPARSE_HEADER_BYTES}")
        magic, version, chunk, k, vbits, group, h_numel = _HEADER.unpack_from(payload, 0)
        if magic != self.magic:
            raise CompressionError(f"bad magic {magic!r}, expected {self.magic!r}")
        if version != _VERSION:
            raise CompressionError(f"unsupported {self.name} version {version}, expected {_VERSION}")
        for label, got, want in (
            ("chunk", chunk, s.chunk),
            ("k", k, s.k),
            ("value_bits", vbits, s.value_bits),
            ("scale_group", group, s.scale_group),
            ("numel", h_numel, numel),
        ):
            if got != want:
                raise CompressionError(f"header {label} {got} does not match the expected {want}")

    def _assemble(self, lay: Layout, chunk_of: np.ndarray, idx: np.ndarray, codes: np.ndarray, levels: np.ndarray, device) -> torch.Tensor:
        s = self._spec
        if self.padded:
            out = torch.zeros(lay.nchunks * s.chunk, dtype=torch.float32)
        else:
            out = torch.zeros(lay.numel, dtype=torch.float32, device=device)
        if lay.count:
            values = dequantize(codes, levels, chunk_of // s.scale_group, s.value_bits)
            pos = torch.from_numpy(chunk_of * s.chunk + idx).to(out.device)
            out[pos] = torch.from_numpy(values).to(out.device)
        if self.padded:
            out = self._inverse(out, lay).to(device)
        return out


class SparseLoCoCodec(SparseBase):
    """Top-k per chunk, ``log2(chunk)``-bit indices, ``value_bits``-bit values."""

    name = "sparseloco"
    magic = SPARSELOCO_MAGIC

    def max_payload_bytes(self, numel: int) -> int:
        """The exact payload length (fixed for a given numel)."""
        lay = Layout(self._spec, check_numel(numel), self.padded)
        return SPARSE_HEADER_BYTES + lay.level_bytes + nbytes_for_bits(lay.count * self._index_bits) + lay.code_bytes

    def encode(self, vector: torch.Tensor) -> bytes:
        lay, idx, codes, levels = self._select_quantize(vector)
        levels = levels.reshape(-1).view(torch.uint8)  # binary16, little-endian as every torch device
        return self._payload(lay.numel, [levels, pack_fields(idx, self._index_bits), pack_fields(codes, self._spec.value_bits)])

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        numel = check_numel(numel)
        payload = as_bytes(payload)
        self._check_header(payload, numel)
        expected = self.max_payload_bytes(numel)
        if len(payload) != expected:
            raise CompressionError(f"payload length {len(payload)} does not match the expected {expected} bytes for numel={numel}")
        s = self._spec
        lay = Layout(s, numel, self.padded)
        off = SPARSE_HEADER_BYTES
        levels = np.frombuffer(payload, dtype="<f2", count=lay.ngroups * lay.nlevels, offset=off)
        levels = levels.reshape(lay.ngroups, lay.nlevels)
        check_levels(levels)
        off += lay.level_bytes
        idx = unpack_fixed(payload, self._index_bits, lay.count, off)
        off += nbytes_for_bits(lay.count * self._index_bits)
        codes = unpack_fixed(payload, s.value_bits, lay.count, off)
        chunk_of = lay.chunk_of_entries(s.k)
        _check_sorted_in_range(idx, chunk_of, lay, s)
        return self._assemble(lay, chunk_of, idx, codes, levels, device)


def _check_sorted_in_range(idx: np.ndarray, chunk_of: np.ndarray, lay: Layout, spec: CodecSpec) -> None:
    if lay.count == 0:
        return
    limit = lay.chunk_lengths(spec.chunk)[chunk_of]
    bad = idx >= limit
    if bad.any():
        c = int(chunk_of[np.flatnonzero(bad)[0]])
        raise CompressionError(f"chunk {c}: index out of range (must be < {int(lay.chunk_lengths(spec.chunk)[c])})")
    if lay.count > 1:
        same_chunk = chunk_of[1:] == chunk_of[:-1]
        bad = same_chunk & (idx[1:] <= idx[:-1])
        if bad.any():
            c = int(chunk_of[np.flatnonzero(bad)[0] + 1])
            raise CompressionError(f"chunk {c}: indices are not strictly increasing")


def exclusive_cumsum(a):
    """Sums of the elements before each one (int64), of a numpy array or a tensor alike."""
    if isinstance(a, torch.Tensor):
        return torch.cumsum(a, dim=0) - a
    out = np.zeros(a.size, dtype=np.int64)
    if a.size > 1:
        np.cumsum(a[:-1], out=out[1:])
    return out


register_codec(SparseLoCoCodec.name, SparseLoCoCodec)
