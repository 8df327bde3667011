"""SparseLoCo codecs: chunked top-k, low-bit values, bit-packed or entropy-coded indices.

Two codecs share one selection and one quantizer and differ only in how the
indices travel, so for the same spec they decode to bit-identical vectors:

* ``"sparseloco"``: indices bit-packed at ``log2(chunk)`` bits (12 at 4096).
* ``"sparseloco-ec"``: indices entropy-coded per chunk: Golomb-Rice coding of
  the gaps between sorted indices, the Rice parameter chosen per chunk.
  Parameter 0 *is* a bitmap of the chunk cut after its last kept index (a one
  bit per kept index, a zero bit per skipped one), so a separate bitmap mode
  could never be smaller and there is none.

Selection is exactly the ``topk`` codec's (see ``topk.py``): ``n = numel``,
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

``sparseloco-ec`` body:

1. Rice parameters: ``nc`` fields of 4 bits, packed, each
   ``0 <= r <= rmax = min(14, log2(C) - 1)``;
2. levels, as above;
3. codes, as above;
4. remainder stream, packed: for every kept entry, chunk after chunk, the
   low ``r`` bits of its gap (``r`` of its chunk; nothing when ``r = 0``);
5. unary stream, packed, all the remaining bytes: for every kept entry, in
   the same order, ``q`` zero bits then a one bit. Its last byte holds its
   last one bit (no trailing bytes), and padding bits are zero.

For a chunk with sorted kept indices ``i_0 < i_1 < ...``, the gaps are
``g_0 = i_0`` and ``g_j = i_j - i_{j-1} - 1``, and ``g = (q << r) | rem``.
The encoder picks per chunk the ``r`` with the fewest bits,
``s(1+r) + sum(g >> r)`` (``s`` kept entries; ties to the smaller ``r``).
With ``r = 0`` a chunk of ``Lc`` elements costs at most ``Lc`` bits, so no
payload is longer than the bound of ``max_payload_bytes``. The decoder needs
no stream lengths: the remainder stream's length follows from the
parameters, the unary stream is the rest, and the ``j``-th one bit of the
unary stream ends the ``j``-th code (all of it vectorized).

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
    bit_stream,
    nbytes_for_bits,
    pack_fields,
    pack_varying,
    stream_bits,
    unpack_fixed,
)
from .quant import check_levels, dequantize, levels_per_group, quantize
from .topk import select_topk

__all__ = [
    "SparseLoCoCodec",
    "SparseLoCoECCodec",
    "SPARSE_HEADER_BYTES",
    "SPARSELOCO_MAGIC",
    "SPARSELOCO_EC_MAGIC",
]

SPARSELOCO_MAGIC = b"GSSL"
SPARSELOCO_EC_MAGIC = b"GSSE"
_VERSION = 1
_HEADER = struct.Struct("<4sBIIBIQ")
SPARSE_HEADER_BYTES = _HEADER.size  # 26


class _Layout:
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


class _SparseBase(NamedCodec):
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
        return _Layout(self._spec, check_numel(numel), self.padded).count

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
            lay = _Layout(s, x.numel(), self.padded)
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

    def _inverse(self, out: torch.Tensor, lay: _Layout) -> torch.Tensor:
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

    def _assemble(self, lay: _Layout, chunk_of: np.ndarray, idx: np.ndarray, codes: np.ndarray, levels: np.ndarray, device) -> torch.Tensor:
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


class SparseLoCoCodec(_SparseBase):
    """Top-k per chunk, ``log2(chunk)``-bit indices, ``value_bits``-bit values."""

    name = "sparseloco"
    magic = SPARSELOCO_MAGIC

    def max_payload_bytes(self, numel: int) -> int:
        """The exact payload length (fixed for a given numel)."""
        lay = _Layout(self._spec, check_numel(numel), self.padded)
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
        lay = _Layout(s, numel, self.padded)
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


def _check_sorted_in_range(idx: np.ndarray, chunk_of: np.ndarray, lay: _Layout, spec: CodecSpec) -> None:
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


class SparseLoCoECCodec(_SparseBase):
    """As ``sparseloco``, with Golomb-Rice (or bitmap) coded indices per chunk."""

    name = "sparseloco-ec"
    magic = SPARSELOCO_EC_MAGIC

    def __init__(self, spec: CodecSpec) -> None:
        super().__init__(spec)
        self._rmax = min(14, self._index_bits - 1)

    def _prefix_bytes(self, lay: _Layout) -> int:
        return SPARSE_HEADER_BYTES + nbytes_for_bits(4 * lay.nchunks) + lay.level_bytes + lay.code_bytes

    def max_payload_bytes(self, numel: int) -> int:
        """Upper bound: a chunk of ``Lc`` elements never costs more than ``Lc``
        index bits (Rice parameter 0), plus one byte of padding per stream."""
        lay = _Layout(self._spec, check_numel(numel), self.padded)
        return self._prefix_bytes(lay) + nbytes_for_bits(numel) + 1

    # ---------------------------------------------------------------- encode

    def encode(self, vector: torch.Tensor) -> bytes:
        s = self._spec
        lay, idx, codes, levels = self._select_quantize(vector)
        device = idx.device
        kept = torch.from_numpy(lay.kept_per_chunk(s.k)).to(device)
        chunk_of = lay.entry_chunks(s.k, device)
        starts = _exclusive_cumsum(kept)
        # Gaps between sorted indices, restarting at every chunk.
        gaps = idx.clone()
        if lay.count:
            gaps[1:] -= idx[:-1] + 1
            gaps[starts] = idx[starts]
        # Bits per chunk for every Rice parameter; the first minimum wins.
        narrow = gaps.to(torch.int32)  # a chunk's gaps sum to less than its length, at most 65536
        costs = torch.stack([lay.chunk_sums(narrow >> r, s.k) + kept * (1 + r) for r in range(self._rmax + 1)])
        r_chunk = costs.argmin(dim=0) if lay.nchunks else kept
        r_e = r_chunk[chunk_of]
        # Remainders: entry after entry, the low r_e bits of its gap, low bit first.
        remainders = pack_varying(gaps & ((1 << r_e) - 1), r_e)
        ones = torch.cumsum((gaps >> r_e) + 1, dim=0) - 1
        unary = bit_stream(ones, int(ones[-1]) + 1) if lay.count else ones.new_empty(0, dtype=torch.uint8)
        levels = levels.reshape(-1).view(torch.uint8)
        return self._payload(lay.numel, [pack_fields(r_chunk, 4), levels, pack_fields(codes, s.value_bits), remainders, unary])

    # ---------------------------------------------------------------- decode

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        numel = check_numel(numel)
        payload = as_bytes(payload)
        self._check_header(payload, numel)
        limit = self.max_payload_bytes(numel)
        if len(payload) > limit:
            raise CompressionError(f"payload of {len(payload)} bytes exceeds the bound {limit} for numel={numel}")
        s = self._spec
        lay = _Layout(s, numel, self.padded)
        prefix = self._prefix_bytes(lay)
        if len(payload) < prefix:
            raise CompressionError(f"payload of {len(payload)} bytes is shorter than its fixed part ({prefix})")
        nc = lay.nchunks
        off = SPARSE_HEADER_BYTES
        r_chunk = unpack_fixed(payload, 4, nc, off)
        bad = r_chunk > self._rmax
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            raise CompressionError(f"chunk {c}: Rice parameter {int(r_chunk[c])} exceeds {self._rmax}")
        off += nbytes_for_bits(4 * nc)
        levels = np.frombuffer(payload, dtype="<f2", count=lay.ngroups * lay.nlevels, offset=off)
        levels = levels.reshape(lay.ngroups, lay.nlevels)
        check_levels(levels)
        off += lay.level_bytes
        codes = unpack_fixed(payload, s.value_bits, lay.count, off)
        off += lay.code_bytes

        kept = lay.kept_per_chunk(s.k)
        chunk_of = lay.chunk_of_entries(s.k)
        r_e = r_chunk[chunk_of]
        total_rem = int(r_e.sum())
        rem_bytes = nbytes_for_bits(total_rem)
        if off + rem_bytes > len(payload):
            raise CompressionError(f"payload truncated: the remainder stream needs {rem_bytes} bytes")
        raw = np.frombuffer(payload, dtype=np.uint8, count=rem_bytes, offset=off)
        if total_rem & 7 and raw[-1] >> (total_rem & 7):
            raise CompressionError("non-zero padding bits after the remainder stream")
        off += rem_bytes
        rem = _fields_at(raw, _exclusive_cumsum(r_e), r_e)

        unary_bytes = len(payload) - off
        if lay.count == 0:
            if unary_bytes:
                raise CompressionError(f"{unary_bytes} unexpected trailing bytes")
            return self._assemble(lay, chunk_of, chunk_of, codes, levels, device)
        ubits = stream_bits(payload, off, unary_bytes)
        n_ones = int(ubits.sum(dtype=np.int64))
        if n_ones != lay.count:  # checked before listing them
            raise CompressionError(f"unary stream holds {n_ones} codes, expected {lay.count}")
        ones = np.flatnonzero(ubits)
        if nbytes_for_bits(int(ones[-1]) + 1) != unary_bytes:
            raise CompressionError("trailing bytes after the last unary code")
        q = np.diff(ones, prepend=-1) - 1
        gaps = (q << r_e) | rem
        step = np.cumsum(gaps + 1)
        # Restart the running sum at every chunk: subtract the sum before the chunk's first entry.
        starts = _exclusive_cumsum(kept)
        before = step[starts] - gaps[starts] - 1
        idx = step - np.repeat(before, kept) - 1
        lengths = lay.chunk_lengths(s.chunk)
        bad = idx >= lengths[chunk_of]
        if bad.any():
            c = int(chunk_of[np.flatnonzero(bad)[0]])
            raise CompressionError(f"chunk {c}: index out of range (must be < {int(lengths[c])})")
        return self._assemble(lay, chunk_of, idx, codes, levels, device)


def _fields_at(raw: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The fields of ``widths`` bits (at most 17) starting at bit ``starts`` of the byte array ``raw``
    (int64): three bytes read around each start hold all of its field, so no array of single bits is
    made (that, one pass per bit, was most of the decoder's time)."""
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([raw, np.zeros(3, dtype=np.uint8)])
    byte = starts >> 3
    word = padded[byte].astype(np.int64) | (padded[byte + 1].astype(np.int64) << 8) | (padded[byte + 2].astype(np.int64) << 16)
    return (word >> (starts & 7)) & ((np.int64(1) << widths) - 1)


def _exclusive_cumsum(a):
    """Sums of the elements before each one (int64), of a numpy array or a tensor alike."""
    if isinstance(a, torch.Tensor):
        return torch.cumsum(a, dim=0) - a
    out = np.zeros(a.size, dtype=np.int64)
    if a.size > 1:
        np.cumsum(a[:-1], out=out[1:])
    return out


register_codec(SparseLoCoCodec.name, SparseLoCoCodec)
register_codec(SparseLoCoECCodec.name, SparseLoCoECCodec)
