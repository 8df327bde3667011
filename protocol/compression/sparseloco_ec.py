"""The ``sparseloco-ec`` codec: ``sparseloco`` with entropy-coded indices.

It shares the selection, the quantizer, the header, the levels and the codes
of ``sparseloco.py`` (so the two decode to the very same vectors) and differs
only in how the indices travel.

``sparseloco-ec`` body:

1. Rice parameters: ``nc`` fields of 4 bits, packed, each
   ``0 <= r <= rmax = min(14, log2(C) - 1)``;
2. levels, as in ``sparseloco.py``;
3. codes, as in ``sparseloco.py``;
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
"""

from __future__ import annotations

import numpy as np
import torch

from .base import CodecSpec, CompressionError, as_bytes, check_numel, register_codec
from .bitpack import bit_stream, nbytes_for_bits, pack_fields, pack_varying, stream_bits, unpack_fixed
from .quant import check_levels
from .sparseloco import SPARSE_HEADER_BYTES, SPARSELOCO_EC_MAGIC, Layout, SparseBase, exclusive_cumsum

__all__ = ["SparseLoCoECCodec"]


class SparseLoCoECCodec(SparseBase):
    """As ``sparseloco``, with Golomb-Rice (or bitmap) coded indices per chunk."""

    name = "sparseloco-ec"
    magic = SPARSELOCO_EC_MAGIC

    def __init__(self, spec: CodecSpec) -> None:
        super().__init__(spec)
        self._rmax = min(14, self._index_bits - 1)

    def _prefix_bytes(self, lay: Layout) -> int:
        return SPARSE_HEADER_BYTES + nbytes_for_bits(4 * lay.nchunks) + lay.level_bytes + lay.code_bytes

    def max_payload_bytes(self, numel: int) -> int:
        """Upper bound: a chunk of ``Lc`` elements never costs more than ``Lc``
        index bits (Rice parameter 0), plus one byte of padding per stream."""
        lay = Layout(self._spec, check_numel(numel), self.padded)
        return self._prefix_bytes(lay) + nbytes_for_bits(numel) + 1

    # ---------------------------------------------------------------- encode

    def encode(self, vector: torch.Tensor) -> bytes:
        s = self._spec
        lay, idx, codes, levels = self._select_quantize(vector)
        device = idx.device
        kept = torch.from_numpy(lay.kept_per_chunk(s.k)).to(device)
        chunk_of = lay.entry_chunks(s.k, device)
        starts = exclusive_cumsum(kept)
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
        lay = Layout(s, numel, self.padded)
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
        rem = _fields_at(raw, exclusive_cumsum(r_e), r_e)

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
        starts = exclusive_cumsum(kept)
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


register_codec(SparseLoCoECCodec.name, SparseLoCoECCodec)
