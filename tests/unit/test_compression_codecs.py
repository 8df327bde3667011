"""The low-bit codec suite: sparseloco, sparseloco-ec, demo-dct, dense-fp16.

Round trips against a slow reference of the documented rules, exact byte
layouts, the compression ratios the issue asks for, and hostile payloads
(hand-built and fuzzed) for every decoder.
"""

from __future__ import annotations

import random
import struct
import time

import numpy as np
import pytest
import scipy.fft
import torch

from protocol.compression import (
    SPARSE_HEADER_BYTES,
    CodecSpec,
    CompressionError,
    ErrorFeedback,
    get_codec,
    registered_codecs,
)
from protocol.compression.bitpack import pack_fixed, unpack_fixed

NEW = ("sparseloco", "sparseloco-ec", "demo-dct", "dense-fp16")


def codec(name, chunk=64, k=4, value_bits=2, scale_group=1):
    return get_codec(CodecSpec(name=name, chunk=chunk, k=k, value_bits=value_bits, scale_group=scale_group))


# ------------------------------------------------------------------ reference


def ref_select(a: np.ndarray, chunk: int, k: int, padded: bool = False):
    """Per chunk: kept (indices ascending, values) by largest |x|, ties to lower index."""
    out = []
    for start in range(0, a.size, chunk):
        part = a[start : start + chunk]
        order = sorted(range(part.size), key=lambda j: (-abs(float(part[j])), j))
        keep = sorted(order[: min(k, part.size)])
        out.append((keep, part[keep]))
    return out


def ref_quantize(chunks, value_bits, group):
    """Dequantized values per chunk by the rule of quant.py."""
    result = []
    for g0 in range(0, len(chunks), group):
        block = chunks[g0 : g0 + group]
        vals = np.concatenate([v for _, v in block]).astype(np.float32)
        m = np.abs(vals).astype(np.float64)
        mu = m.sum() / m.size
        if value_bits == 1:
            levels = [np.float16(min(mu, 65504.0))]
        else:
            high = m > mu
            lo = m[~high].sum() / max((~high).sum(), 1)
            hi = m[high].sum() / high.sum() if high.any() else lo
            levels = [np.float16(min(lo, 65504.0)), np.float16(min(hi, 65504.0))]
        for keep, v in block:
            mv = np.abs(v.astype(np.float32)).astype(np.float64)
            if value_bits == 1:
                mag = np.full(v.size, np.float32(levels[0]))
            else:
                mag = np.where(mv > mu, np.float32(levels[1]), np.float32(levels[0]))
            result.append((keep, np.where(v < 0, -mag, mag).astype(np.float32)))
    return result


def ref_sparse(x: torch.Tensor, chunk, k, value_bits, group) -> torch.Tensor:
    a = x.numpy().astype(np.float32)
    out = np.zeros_like(a)
    chunks = ref_select(a, chunk, k)
    for c, (keep, v) in enumerate(ref_quantize(chunks, value_bits, group)):
        out[c * chunk + np.asarray(keep, dtype=np.int64)] = v
    return torch.from_numpy(out)


# ------------------------------------------------------------------ spec / registry


def test_registry_and_spec_defaults():
    for name in NEW:
        assert name in registered_codecs()
    spec = CodecSpec(name="topk", chunk=4096, k=64)  # old callers keep working
    assert spec.value_bits == 2 and spec.scale_group == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(value_bits=0),
        dict(value_bits=3),
        dict(value_bits=True),
        dict(value_bits=2.0),
        dict(scale_group=0),
        dict(scale_group=65537),
        dict(scale_group=None),
    ],
)
def test_new_spec_fields_validated(kwargs):
    with pytest.raises(CompressionError):
        CodecSpec(name="sparseloco", chunk=64, k=4, **kwargs)


def test_codec_refuses_other_name():
    from protocol.compression import (
        DemoDCTCodec,
        DenseFP16Codec,
        SparseLoCoCodec,
        SparseLoCoECCodec,
    )

    for cls in (SparseLoCoCodec, SparseLoCoECCodec, DemoDCTCodec, DenseFP16Codec):
        with pytest.raises(CompressionError):
            cls(CodecSpec(name="topk", chunk=64, k=4))


# ------------------------------------------------------------------ bit packing


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 7, 8, 11, 12, 13, 16])
@pytest.mark.parametrize("count", [0, 1, 2, 7, 64, 101])
def test_pack_unpack_round_trip(bits, count):
    rng = np.random.default_rng(bits * 1000 + count)
    v = rng.integers(0, 1 << bits, size=count)
    buf = pack_fixed(v, bits)
    assert len(buf) == (count * bits + 7) // 8
    # Little-endian bit order: bit p of the stream is field p // bits, bit p % bits.
    stream = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    expect = ((v[:, None] >> np.arange(bits)) & 1).reshape(-1) if count else np.zeros(0)
    assert np.array_equal(stream[: count * bits], expect)
    assert not stream[count * bits :].any()
    assert np.array_equal(unpack_fixed(buf, bits, count), v)


def test_unpack_refuses_padding_bits():
    buf = bytearray(pack_fixed(np.array([5, 3, 1]), 3))  # 9 bits -> 2 bytes
    buf[-1] |= 0x80
    with pytest.raises(CompressionError):
        unpack_fixed(bytes(buf), 3, 3)


# ------------------------------------------------------------------ round trips


SHAPES = [
    (64, 4, 64 * 10),  # exact multiple
    (64, 4, 64 * 10 + 17),  # partial last chunk longer than k
    (64, 4, 64 * 3 + 2),  # partial last chunk shorter than k
    (64, 4, 3),
    (64, 64, 200),  # k == chunk: every entry kept (bitmap for ec)
    (64, 40, 64 * 5 + 50),  # dense selection: bitmap chunks and Rice chunks mixed
    (128, 1, 1000),
    (4096, 64, 4096 * 7 + 1000),
    (65536, 7, 70000),  # 16-bit indices
]


@pytest.mark.parametrize(("chunk", "k", "numel"), SHAPES)
@pytest.mark.parametrize("value_bits", [1, 2])
@pytest.mark.parametrize("group", [1, 3])
def test_sparse_round_trip_matches_reference(chunk, k, numel, value_bits, group):
    torch.manual_seed(numel + chunk + k + value_bits)
    x = torch.randn(numel) * torch.rand(numel) * 10
    expected = ref_sparse(x, chunk, k, value_bits, group)
    plain = codec("sparseloco", chunk, k, value_bits, group)
    ec = codec("sparseloco-ec", chunk, k, value_bits, group)
    p1, p2 = plain.encode(x), ec.encode(x)
    assert len(p1) == plain.max_payload_bytes(numel)
    assert len(p2) <= ec.max_payload_bytes(numel)
    y1, y2 = plain.decode(p1, numel), ec.decode(p2, numel)
    assert y1.dtype == torch.float32 and y1.shape == (numel,)
    assert torch.equal(y1, expected)
    assert torch.equal(y2, expected)  # same selection, same quantizer
    assert p1 == plain.encode(x.clone()) and p2 == ec.encode(x.double())  # deterministic


def test_sparse_empty_and_zero_vectors():
    for name in ("sparseloco", "sparseloco-ec", "demo-dct", "dense-fp16"):
        c = codec(name)
        assert c.decode(c.encode(torch.zeros(0)), 0).shape == (0,)
        y = c.decode(c.encode(torch.zeros(300)), 300)
        assert torch.equal(y, torch.zeros(300))


def test_nonfinite_refused_by_every_encoder():
    for name in NEW:
        c = codec(name)
        for bad in (float("nan"), float("inf"), float("-inf")):
            x = torch.randn(64 * 3 + 5)
            x[70] = bad
            with pytest.raises(CompressionError):
                c.encode(x)
        with pytest.raises(CompressionError):
            c.encode(torch.zeros(4, 4))


def test_huge_values_clamped_to_fp16_levels():
    x = torch.zeros(64)
    x[3], x[7] = 1e9, -1e9
    for name in ("sparseloco", "sparseloco-ec"):
        y = codec(name).decode(codec(name).encode(x), 64)
        assert y[3] == 65504.0 and y[7] == -65504.0


def test_sparseloco_byte_layout_matches_documentation():
    # chunk 64 -> 6-bit indices; k = 2; 2-bit codes; one scale group.
    x = torch.zeros(64 + 3)
    x[5], x[40] = 3.0, -1.0  # chunk 0 keeps 5 and 40
    x[64 + 1] = 2.0  # chunk 1 (3 real elements) keeps indices 0 and 1 (tie at 0 -> lower index)
    c = codec("sparseloco", 64, 2, 2, 1)
    payload = c.encode(x)
    # Group of chunks 0 and 1 (one group per chunk here): chunk 0 |v| = 3, 1 -> mu = 2,
    # lo = 1, hi = 3; chunk 1 |v| = 0, 2 -> mu = 1, lo = 0, hi = 2.
    levels = np.array([1.0, 3.0, 0.0, 2.0], dtype="<f2").tobytes()
    idx = pack_fixed(np.array([5, 40, 0, 1]), 6)
    codes = pack_fixed(np.array([0b10, 0b01, 0b00, 0b10]), 2)
    header = struct.pack("<4sBIIBIQ", b"GSSL", 1, 64, 2, 2, 1, 67)
    assert payload == header + levels + idx + codes
    assert len(header) == SPARSE_HEADER_BYTES
    y = c.decode(payload, 67)
    assert y[5] == 3.0 and y[40] == -1.0 and y[65] == 2.0 and y[64] == 0.0


def test_ec_byte_layout_rice_and_bitmap():
    # Chunk 0 (64 elements, k = 3) keeps 2, 3, 40 -> gaps 2, 0, 36.
    # Costs: r=0: 3 + 38 = 41; r=1: 6 + 1+0+18 = 25; r=2: 9 + 0+0+9 = 18; r=3: 12 + 0+0+4 = 16;
    # r=4: 15 + 2 = 17; r=5: 18 + 1 = 19 -> Rice with r = 3 (bitmap: 64 bits).
    # Chunk 1 has 3 real elements, keeps all 3: gaps 0,0,0 -> r=0 costs 3 bits, bitmap 3 bits:
    # tie -> Rice r = 0.
    x = torch.zeros(67)
    x[2], x[3], x[40] = 1.0, -1.0, 4.0
    x[64:] = torch.tensor([1.0, 2.0, 3.0])
    c = codec("sparseloco-ec", 64, 3, 1, 2)  # 1-bit values, both chunks in one scale group
    payload = c.encode(x)
    header = struct.pack("<4sBIIBIQ", b"GSSE", 1, 64, 3, 1, 2, 67)
    modes = pack_fixed(np.array([3, 0]), 4)
    levels = np.array([(1 + 1 + 4 + 1 + 2 + 3) / 6], dtype="<f2").tobytes()
    codes = pack_fixed(np.array([0, 1, 0, 0, 0, 0]), 1)
    # Fixed stream: remainders of chunk 0 at 3 bits: 2, 0, 36 & 7 = 4; chunk 1 has r = 0.
    fixed = pack_fixed(np.array([2, 0, 4]), 3)
    # Unary: q = 0, 0, 36 >> 3 = 4, then chunk 1: 0, 0, 0 -> "1" "1" "00001" "1" "1" "1".
    bits = [1, 1, 0, 0, 0, 0, 1, 1, 1, 1]
    unary = np.packbits(np.array(bits, dtype=np.uint8), bitorder="little").tobytes()
    assert payload == header + modes + levels + codes + fixed + unary
    y = c.decode(payload, 67)
    lv = np.float32(np.float16(2.0))
    assert y[2] == lv and y[3] == -lv and y[40] == lv and torch.equal(y[64:], torch.full((3,), lv))

    # A nearly full chunk: Rice parameter 0, i.e. a bitmap cut after the last kept index.
    x = torch.randn(64)
    c = codec("sparseloco-ec", 64, 60)
    payload = c.encode(x)
    assert payload[SPARSE_HEADER_BYTES] & 0x0F == 0
    assert len(payload) <= c.max_payload_bytes(64)
    assert torch.equal(c.decode(payload, 64), ref_sparse(x, 64, 60, 2, 1))


def _adam_like(numel: int, seed: int = 0) -> torch.Tensor:
    """Heavy-tailed, row-structured values like an AdamW pseudo-gradient."""
    g = torch.Generator().manual_seed(seed)
    rows = numel // 512
    scale = torch.exp(torch.randn(rows, 1, generator=g) * 0.5)
    x = torch.distributions.Laplace(0.0, 1.0).sample((rows, 512)) * scale
    return x.reshape(-1)[:numel].contiguous()


def test_compression_ratios_at_64_of_4096():
    numel = 4096 * 32 * 24  # 3.1M elements, whole scale groups of 32 chunks
    torch.manual_seed(7)
    for x in (torch.randn(numel), _adam_like(numel)):
        plain = codec("sparseloco", 4096, 64, 2, 32)
        ec = codec("sparseloco-ec", 4096, 64, 2, 32)
        r_plain = numel * 4 / len(plain.encode(x))
        r_ec = numel * 4 / len(ec.encode(x))
        assert r_plain >= 146.0, r_plain
        assert r_ec >= 200.0, r_ec
    # 12 bits per index and 2 per value are really what travels.
    assert plain.max_payload_bytes(numel) == SPARSE_HEADER_BYTES + 24 * 2 * 2 + numel // 64 * 14 // 8


def test_error_feedback_with_every_codec():
    numel = 64 * 20 + 9
    for name in NEW:
        c = codec(name)
        torch.manual_seed(3)
        ef = ErrorFeedback()
        deltas = torch.zeros(numel, dtype=torch.float64)
        sent = torch.zeros(numel, dtype=torch.float64)
        for _ in range(20):
            d = torch.randn(numel) * 0.01
            deltas += d.double()
            p = ef.step(d, c, beta=1.0)
            sent += c.decode(p, numel).double()
        assert torch.allclose(sent + ef.residual.double(), deltas, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ demo-dct and dense


def test_dct_reconstructs_a_sparse_spectrum():
    chunk, numel = 64, 64 * 3 + 10
    coeffs = np.zeros((4, chunk))
    coeffs[0, 5] = 2.0
    coeffs[1, 17] = -2.0
    coeffs[2, 0] = 2.0
    coeffs[3, 63] = 2.0
    x = scipy.fft.idct(coeffs, type=2, norm="ortho", axis=1).reshape(-1)[:numel]
    c = codec("demo-dct", chunk, 1, 1, 1)  # one coefficient per chunk, sign + its level
    payload = c.encode(torch.from_numpy(x.astype(np.float32)))
    assert len(payload) == c.max_payload_bytes(numel)
    y = c.decode(payload, numel).numpy()
    # The last chunk's padding changed its spectrum a little; the first three are exact.
    assert np.allclose(y[:192], x[:192], atol=1e-3)
    torch.manual_seed(1)
    z = torch.randn(4096 * 3)
    c = codec("demo-dct", 4096, 64, 2, 1)
    err = float((c.decode(c.encode(z), z.numel()) - z).norm() / z.norm())
    assert 0.0 < err < 1.0


def test_dense_fp16():
    c = codec("dense-fp16")
    x = torch.randn(1000) * 100
    x[0] = 1e6
    payload = c.encode(x)
    assert len(payload) == c.max_payload_bytes(1000) == 13 + 2000
    y = c.decode(payload, 1000)
    assert y[0] == 65504.0
    assert torch.equal(y[1:], x[1:].half().float())


# ------------------------------------------------------------------ hostile payloads


def _valid(name, chunk=64, k=4, vb=2, group=2, numel=64 * 5 + 10, seed=0):
    c = codec(name, chunk, k, vb, group)
    torch.manual_seed(seed)
    return c, c.encode(torch.randn(numel) * torch.rand(numel)), numel


def _set_header(payload: bytes, **fields) -> bytes:
    names = ["magic", "version", "chunk", "k", "value_bits", "scale_group", "numel"]
    values = dict(zip(names, struct.unpack_from("<4sBIIBIQ", payload, 0), strict=True))
    values.update(fields)
    return struct.pack("<4sBIIBIQ", *[values[n] for n in names]) + payload[SPARSE_HEADER_BYTES:]


@pytest.mark.parametrize("name", ["sparseloco", "sparseloco-ec", "demo-dct"])
def test_sparse_header_and_length_attacks(name):
    c, good, numel = _valid(name)
    attacks = {
        "empty": b"",
        "short": good[:10],
        "header only": good[:SPARSE_HEADER_BYTES],
        "truncated": good[:-1],
        "extended": good + b"\x00",
        "extended by ones": good + b"\xff" * 3,
        "magic": b"XXXX" + good[4:],
        "version": _set_header(good, version=2),
        "chunk": _set_header(good, chunk=128),
        "k": _set_header(good, k=5),
        "value_bits": _set_header(good, value_bits=1),
        "scale_group": _set_header(good, scale_group=1),
        "numel": _set_header(good, numel=numel + 1),
        "numel huge": _set_header(good, numel=2**64 - 1),
    }
    for label, payload in attacks.items():
        with pytest.raises(CompressionError):  # noqa: PT012 - the label says which attack got through
            c.decode(payload, numel)
            pytest.fail(label)
    for bad_numel in (numel - 1, numel + 1, 0, 2**63, -1, 3.0, True, None):
        with pytest.raises(CompressionError):
            c.decode(good, bad_numel)
    for bad in (None, "x", 12):
        with pytest.raises(CompressionError):
            c.decode(bad, numel)
    assert torch.equal(c.decode(bytearray(good), numel), c.decode(memoryview(good), numel))


def _levels_offset(name, numel, chunk=64):
    nchunks = -(-numel // chunk)
    return SPARSE_HEADER_BYTES + ((4 * nchunks + 7) // 8 if name == "sparseloco-ec" else 0)


@pytest.mark.parametrize("name", ["sparseloco", "sparseloco-ec", "demo-dct"])
@pytest.mark.parametrize(
    "level",
    [float("nan"), float("inf"), float("-inf"), -1.0, -0.0],
)
def test_bad_levels_refused(name, level):
    c, good, numel = _valid(name)
    off = _levels_offset(name, numel)
    data = bytearray(good)
    data[off : off + 2] = np.array([level], dtype="<f2").tobytes()
    with pytest.raises(CompressionError):
        c.decode(bytes(data), numel)


@pytest.mark.parametrize("name", ["sparseloco", "sparseloco-ec", "demo-dct"])
def test_unordered_levels_refused(name):
    c, good, numel = _valid(name)
    off = _levels_offset(name, numel)
    data = bytearray(good)
    data[off : off + 4] = np.array([2.0, 1.0], dtype="<f2").tobytes()
    with pytest.raises(CompressionError, match="low level"):
        c.decode(bytes(data), numel)


def _plain_with_indices(idx_rows, chunk=64, k=4, numel=64 * 2):
    c = codec("sparseloco", chunk, k, 2, 1)
    nchunks = len(idx_rows)
    levels = np.array([1.0, 2.0] * nchunks, dtype="<f2").tobytes()
    idx = pack_fixed(np.array(idx_rows).reshape(-1), 6)
    codes = pack_fixed(np.zeros(nchunks * k, dtype=np.int64), 2)
    header = struct.pack("<4sBIIBIQ", b"GSSL", 1, chunk, k, 2, 1, numel)
    return c, header + levels + idx + codes, numel


def test_plain_index_attacks():
    c, ok, numel = _plain_with_indices([[1, 5, 9, 63], [0, 2, 4, 9]])
    assert c.decode(ok, numel)[64 + 9] == 1.0
    for rows in ([[1, 5, 5, 63], [0, 2, 4, 9]], [[1, 5, 4, 63], [0, 2, 4, 9]], [[0, 1, 2, 3], [9, 2, 4, 8]]):
        _, bad, _ = _plain_with_indices(rows)
        with pytest.raises(CompressionError, match="strictly increasing"):
            c.decode(bad, numel)
    # Index in the padding of a partial last chunk (numel = 64 + 10).
    c = codec("sparseloco", 64, 4, 2, 1)
    for last in ([0, 1, 2, 10], [0, 1, 2, 9]):
        levels = np.array([1.0, 2.0] * 2, dtype="<f2").tobytes()
        idx = pack_fixed(np.array([1, 5, 9, 63, *last]), 6)
        codes = pack_fixed(np.zeros(8, dtype=np.int64), 2)
        payload = struct.pack("<4sBIIBIQ", b"GSSL", 1, 64, 4, 2, 1, 74) + levels + idx + codes
        if last[-1] == 10:
            with pytest.raises(CompressionError, match="out of range"):
                c.decode(payload, 74)
        else:
            assert c.decode(payload, 74).shape == (74,)


def _ec_payload(modes, rem_bits, unary_bits, numel=64 * 2, k=4, vb=1):
    nchunks = -(-numel // 64)
    header = struct.pack("<4sBIIBIQ", b"GSSE", 1, 64, k, vb, 1, numel)
    levels = np.array([1.0] * nchunks, dtype="<f2").tobytes()
    count = (numel // 64) * k + min(k, numel % 64)
    codes = pack_fixed(np.zeros(count, dtype=np.int64), vb)
    rem = np.packbits(np.array(rem_bits, dtype=np.uint8), bitorder="little").tobytes()
    unary = np.packbits(np.array(unary_bits, dtype=np.uint8), bitorder="little").tobytes()
    return header + pack_fixed(np.array(modes), 4) + levels + codes + rem + unary


def test_ec_hand_built_attacks():
    c = codec("sparseloco-ec", 64, 4, 1, 1)
    # Valid: both chunks r = 0, gaps all 0 -> indices 0..3 in each chunk.
    ok = _ec_payload([0, 0], [], [1] * 8)
    y = c.decode(ok, 128)
    assert torch.equal((y != 0).nonzero().reshape(-1), torch.tensor([0, 1, 2, 3, 64, 65, 66, 67]))
    # Valid: chunk 0 with r = 2, gaps 3, 0, 5, 1 -> q 0,0,1,0 and remainders 3,0,1,1 -> 3, 4, 10, 12.
    rem = [1, 1, 0, 0, 1, 0, 1, 0]
    ok2 = _ec_payload([2, 0], rem, [1, 1, 0, 1, 1] + [1] * 4)
    assert torch.equal((c.decode(ok2, 128) != 0).nonzero().reshape(-1), torch.tensor([3, 4, 10, 12, 64, 65, 66, 67]))
    bad = {
        "parameter 6 > rmax 5": _ec_payload([6, 0], [0] * 24, [1] * 8),
        "parameter 15": _ec_payload([15, 0], [0] * 60, [1] * 8),
        "too few unary codes": _ec_payload([0, 0], [], [1] * 7),
        "too many unary codes": _ec_payload([0, 0], [], [1] * 9),
        "trailing unary byte": _ec_payload([0, 0], [], [1] * 8 + [0] * 8),
        "index past chunk end": _ec_payload([0, 0], [], [0] * 61 + [1] * 4 + [1] * 4),
        "index past chunk end with r": _ec_payload([5, 0], [1] * 20, [1] * 8),
        "remainder stream missing": _ec_payload([5, 5], [], []),
        "remainder padding bit": _ec_payload([1, 0], [0, 0, 0, 0, 1, 0, 0, 0, 1], [1] * 8),
        "no unary stream": _ec_payload([0, 0], [], []),
    }
    # Partial chunk and an odd number of chunks: the high nibble of the last parameter byte must be 0.
    odd = _ec_payload([0, 0, 0], [], [1] * 12, numel=64 * 2 + 10)
    assert c.decode(odd, 138).shape == (138,)
    data = bytearray(odd)
    data[SPARSE_HEADER_BYTES + 1] |= 0x30
    bad["odd nibble padding"] = bytes(data)
    bad["partial chunk index in padding"] = _ec_payload([0, 0, 0], [], [1] * 8 + [0] * 7 + [1] * 4, numel=138)
    for label, payload in bad.items():
        with pytest.raises(CompressionError):  # noqa: PT012 - the label says which payload got through
            c.decode(payload, 138 if label in ("odd nibble padding", "partial chunk index in padding") else 128)
            pytest.fail(label)
    # Over the bound: refused before the streams are read.
    with pytest.raises(CompressionError, match="exceeds the bound"):
        c.decode(ok + b"\x00" * (c.max_payload_bytes(128)), 128)


@pytest.mark.parametrize("name", ["dense-fp16"])
def test_dense_attacks(name):
    c = codec(name)
    good = c.encode(torch.randn(50))
    for payload in (b"", good[:5], good[:-1], good + b"\x00", b"XXXX" + good[4:], good[:4] + b"\x02" + good[5:]):
        with pytest.raises(CompressionError):
            c.decode(payload, 50)
    for numel in (49, 51, 2**63):
        with pytest.raises(CompressionError):
            c.decode(good, numel)
    data = bytearray(good)
    data[13 + 2 * 7 : 13 + 2 * 8] = np.array([np.inf], dtype="<f2").tobytes()
    with pytest.raises(CompressionError):
        c.decode(bytes(data), 50)


FUZZ_CASES = [
    ("sparseloco", 64, 4, 2, 2),
    ("sparseloco", 64, 4, 1, 1),
    ("sparseloco-ec", 64, 4, 2, 2),
    ("sparseloco-ec", 64, 40, 1, 1),  # dense chunks: Rice parameter 0
    ("sparseloco-ec", 4096, 64, 2, 32),
    ("demo-dct", 64, 4, 2, 2),
    ("dense-fp16", 64, 4, 2, 1),
]


def _mutate(rng: random.Random, good: bytes) -> bytes:
    data = bytearray(good)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.7 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op < 0.8:
            del data[rng.randrange(len(data) + 1) :]
        elif op < 0.9:
            data[rng.randrange(len(data) + 1) : 0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif data:
            pos = rng.randrange(len(data))
            del data[pos : pos + rng.randint(1, 4)]
    return bytes(data)


@pytest.mark.parametrize(("name", "chunk", "k", "vb", "group"), FUZZ_CASES)
def test_fuzz_only_clean_errors_or_finite_output(name, chunk, k, vb, group):
    numel = chunk * 5 + chunk // 3
    c, good, numel = _valid(name, chunk, k, vb, group, numel=numel, seed=len(name))
    rng = random.Random(f"{name}-{chunk}-{k}")
    outcomes = {"ok": 0, "error": 0}
    start = time.monotonic()
    header = good[:SPARSE_HEADER_BYTES]
    for i in range(500):
        if i % 5 == 0:
            # Random bytes behind a valid header (the header alone would stop everything else).
            payload = header + bytes(rng.randrange(256) for _ in range(rng.randrange(len(good) + 8)))
        elif i % 5 == 1:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            payload = _mutate(rng, good)
        try:
            y = c.decode(payload, numel)
        except CompressionError:
            outcomes["error"] += 1
            continue
        assert y.shape == (numel,) and y.dtype == torch.float32
        assert bool(torch.isfinite(y).all())
        outcomes["ok"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0, outcomes
    assert time.monotonic() - start < 60  # no hang


def test_decoders_never_allocate_beyond_the_spec():
    # A header claiming a huge vector is refused by the numel check; a payload
    # longer than the bound is refused unread.
    for name in NEW:
        c = codec(name)
        good = c.encode(torch.randn(100))
        with pytest.raises(CompressionError):
            c.decode(good, 2**40)
        with pytest.raises(CompressionError):
            c.decode(good + b"\x00" * c.max_payload_bytes(100), 100)


# ------------------------------------------------------------------ run spec


def test_run_spec_default_codec_and_settings_validation():
    from node.config import CodecSettings, ConfigError, parse_run_file

    settings = CodecSettings()
    spec = settings.codec_spec()
    c = get_codec(spec)
    assert spec.name == settings.name and spec.scale_group == settings.scale_group
    numel = 4096 * 32 * 8
    assert numel * 4 / len(c.encode(_adam_like(numel))) >= 200
    for table in ('name = "nope"', "k = 0", "chunk = 100", "value_bits = 3", "scale_group = 0", "error_feedback_beta = 1.5"):
        with pytest.raises(ConfigError):
            parse_run_file(f"[codec]\n{table}\n")
    assert parse_run_file('[codec]\nname = "topk"\n')[0].codec.codec_spec().name == "topk"
