"""Pseudo-gradient codecs: chunked top-k (fp16 values) and error feedback."""

from __future__ import annotations

import dataclasses
import random
import struct

import numpy as np
import pytest
import torch

from protocol.compression import (
    TOPK_HEADER_BYTES,
    Codec,
    CodecSpec,
    CompressionError,
    ErrorFeedback,
    TopKCodec,
    get_codec,
    registered_codecs,
)


def topk(chunk: int = 64, k: int = 4) -> TopKCodec:
    codec = get_codec(CodecSpec(name="topk", chunk=chunk, k=k))
    assert isinstance(codec, TopKCodec)
    return codec


def reference_dense(x: torch.Tensor, chunk: int, k: int) -> torch.Tensor:
    """Straightforward per-chunk reimplementation of the documented rule:
    keep min(k, real length) entries of largest |x|, ties to the lower index,
    values rounded to fp16 after clamping to its finite range."""
    a = x.numpy().astype(np.float32)
    out = np.zeros_like(a)
    for start in range(0, a.size, chunk):
        part = a[start : start + chunk]
        order = sorted(range(part.size), key=lambda j: (-abs(float(part[j])), j))
        for j in order[: min(k, part.size)]:
            out[start + j] = np.float16(np.clip(part[j], -65504, 65504))
    return torch.from_numpy(out)


def header(chunk: int, k: int, numel: int, magic: bytes = b"GSTK", version: int = 1) -> bytes:
    return struct.pack("<4sBIIQ", magic, version, chunk, k, numel)


def build(chunk: int, k: int, numel: int, idx, vals, **kw) -> bytes:
    return header(chunk, k, numel, **kw) + np.asarray(idx, dtype="<u2").tobytes() + np.asarray(vals, dtype="<f2").tobytes()


# ------------------------------------------------------------------ spec / registry


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="topk", chunk=63, k=1),
        dict(name="topk", chunk=32, k=1),
        dict(name="topk", chunk=131072, k=1),
        dict(name="topk", chunk=96, k=1),
        dict(name="topk", chunk=64, k=0),
        dict(name="topk", chunk=64, k=65),
        dict(name="topk", chunk=64.0, k=4),
        dict(name="topk", chunk=True, k=1),
        dict(name="", chunk=64, k=4),
        dict(name=None, chunk=64, k=4),
    ],
)
def test_spec_validation(kwargs):
    with pytest.raises(CompressionError):
        CodecSpec(**kwargs)


def test_spec_is_frozen_and_registry():
    spec = CodecSpec(name="topk", chunk=4096, k=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.k = 3  # type: ignore[misc]
    assert "topk" in registered_codecs()
    codec = get_codec(spec)
    assert isinstance(codec, Codec)
    assert codec.spec == spec
    with pytest.raises(CompressionError, match="unknown codec"):
        get_codec(CodecSpec(name="nope", chunk=64, k=4))
    with pytest.raises(CompressionError):
        TopKCodec(CodecSpec(name="other", chunk=64, k=4))


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize(
    ("chunk", "k", "numel"),
    [
        (64, 4, 64 * 10),  # exact multiple
        (64, 4, 64 * 10 + 17),  # partial last chunk, longer than k
        (64, 4, 64 * 3 + 2),  # partial last chunk shorter than k
        (64, 4, 3),  # only a partial chunk, shorter than k
        (64, 4, 1),
        (64, 64, 200),  # k == chunk: lossless up to fp16
        (128, 1, 1000),
        (65536, 7, 70000),  # 16-bit indices at the top of their range
    ],
)
def test_round_trip_keeps_exact_topk(chunk, k, numel):
    torch.manual_seed(numel + chunk + k)
    x = torch.randn(numel) * torch.rand(numel) * 10
    codec = topk(chunk, k)
    payload = codec.encode(x)
    assert len(payload) == codec.max_payload_bytes(numel)
    y = codec.decode(payload, numel)
    assert y.dtype == torch.float32 and y.shape == (numel,)
    assert torch.equal(y, reference_dense(x, chunk, k))
    # Count of kept entries per chunk and nothing else.
    full, rem = divmod(numel, chunk)
    assert codec.selected_count(numel) == full * k + min(k, rem)
    assert int((y != 0).sum()) == codec.selected_count(numel)
    nz = y != 0
    assert torch.equal(y[nz], x[nz].to(torch.float16).to(torch.float32))


def test_empty_vector():
    codec = topk()
    payload = codec.encode(torch.zeros(0))
    assert payload == header(64, 4, 0)
    assert codec.decode(payload, 0).shape == (0,)


def test_byte_layout_matches_documentation():
    # A second implementation must produce exactly these bytes.
    x = torch.zeros(64 + 3)
    # |x| ties between 10, 40 and 50 for the last two slots: lower indices win.
    x[5], x[9], x[10], x[40], x[50] = 3.0, -7.5, 1.0, -1.0, 1.0
    x[64 + 1] = 2.0
    payload = topk(64, 4).encode(x)
    expected = build(
        64,
        4,
        67,
        [5, 9, 10, 40, 0, 1, 2],
        [3.0, -7.5, 1.0, -1.0, 0.0, 2.0, 0.0],  # last chunk keeps min(4, 3) = 3
    )
    assert payload == expected
    assert expected[:TOPK_HEADER_BYTES] == b"GSTK\x01" + (64).to_bytes(4, "little") + (4).to_bytes(4, "little") + (67).to_bytes(8, "little")


def test_ties_go_to_lower_index_and_encoding_is_deterministic():
    codec = topk(64, 4)
    x = torch.ones(64 * 5)
    y = codec.decode(codec.encode(x), x.numel()).view(5, 64)
    assert torch.equal(y[:, :4], torch.ones(5, 4))
    assert int((y != 0).sum()) == 20
    # Signed zeros and sign do not affect the ranking; only magnitude.
    x = torch.tensor([0.5, -0.5, 0.5, -0.5] * 16)
    y = codec.decode(codec.encode(x), 64)
    assert torch.equal(y[:4], x[:4]) and int((y != 0).sum()) == 4
    torch.manual_seed(1)
    z = torch.randn(64 * 100 + 5)
    assert codec.encode(z) == codec.encode(z.clone()) == codec.encode(z.double())


def test_large_values_clamped_and_nonfinite_refused():
    codec = topk(64, 4)
    x = torch.zeros(64)
    x[3], x[7] = 1e9, -70000.0
    y = codec.decode(codec.encode(x), 64)
    assert y[3] == 65504.0 and y[7] == -65504.0
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.randn(64 * 3 + 5)
        x[64 + 13] = bad
        with pytest.raises(CompressionError):
            codec.encode(x)
        x = torch.randn(64 * 3 + 5)
        x[-1] = bad  # in the partial chunk
        with pytest.raises(CompressionError):
            codec.encode(x)
    with pytest.raises(CompressionError):
        codec.encode(torch.zeros(4, 4))


def test_compression_ratio():
    codec = topk(4096, 64)
    numel = 4096 * 256
    x = torch.randn(numel)
    payload = codec.encode(x)
    assert len(payload) == codec.max_payload_bytes(numel)
    assert numel * 4 / len(payload) >= 60


def test_decode_to_device_argument():
    codec = topk(64, 4)
    x = torch.randn(300)
    y = codec.decode(codec.encode(x), 300, device=torch.device("cpu"))
    assert y.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_encode_matches_cpu():
    codec = topk(4096, 64)
    torch.manual_seed(2)
    x = torch.randn(4096 * 300 + 123)
    x[:4096] = 1.0  # ties
    x_cuda = x.cuda()
    payload = codec.encode(x_cuda)
    assert payload == codec.encode(x)
    y = codec.decode(payload, x.numel(), device=x_cuda.device)
    assert y.is_cuda
    assert torch.equal(y.cpu(), codec.decode(payload, x.numel()))


# ------------------------------------------------------------------ error feedback


def test_error_feedback_conserves_mass():
    codec = topk(64, 4)
    numel = 64 * 20 + 9
    torch.manual_seed(3)
    ef = ErrorFeedback()
    deltas_sum = torch.zeros(numel, dtype=torch.float64)
    sent_sum = torch.zeros(numel, dtype=torch.float64)
    for _ in range(30):
        delta = torch.randn(numel) * 0.01
        deltas_sum += delta.double()
        payload = ef.step(delta, codec, beta=1.0)
        assert len(payload) == codec.max_payload_bytes(numel)
        sent_sum += codec.decode(payload, numel).double()
    total = sent_sum + ef.residual.double()
    assert torch.allclose(total, deltas_sum, atol=1e-5, rtol=0)
    assert ef.residual.dtype == torch.float32 and ef.residual.device == torch.device("cpu")


def test_error_feedback_residual_bounded_for_constant_delta():
    codec = topk(64, 4)
    numel = 64 * 8
    torch.manual_seed(4)
    delta = torch.randn(numel)
    ef = ErrorFeedback()
    norms = []
    for _ in range(200):
        ef.step(delta, codec, beta=1.0)
        norms.append(float(ef.residual.norm()))
    # Every coordinate is eventually sent: the residual plateaus instead of
    # growing linearly with the number of steps (which would reach ~200*|delta|).
    assert max(norms[100:]) <= 1.2 * max(norms[:100])
    assert max(norms) <= (64 / 4 + 1) * float(delta.norm())


def test_error_feedback_beta_state_and_errors():
    codec = topk(64, 4)
    torch.manual_seed(5)
    d1, d2 = torch.randn(200), torch.randn(200)
    ef = ErrorFeedback()
    assert ef.state_dict() == {}
    p1 = ef.step(d1, codec, beta=0.5)
    r1 = ef.residual.clone()
    assert torch.allclose(r1, d1 - codec.decode(p1, 200))
    state = ef.state_dict()
    p2 = ef.step(d2, codec, beta=0.5)
    e = 0.5 * r1 + d2
    assert p2 == codec.encode(e)
    # Restore and replay: same bytes.
    other = ErrorFeedback()
    other.load_state_dict(state)
    assert other.step(d2, codec, beta=0.5) == p2
    assert torch.equal(other.residual, ef.residual)
    # A failed step leaves the residual untouched.
    before = ef.residual.clone()
    bad = torch.randn(200)
    bad[7] = float("nan")
    with pytest.raises(CompressionError):
        ef.step(bad, codec, beta=1.0)
    assert torch.equal(ef.residual, before)
    with pytest.raises(ValueError):
        ef.step(torch.randn(201), codec, beta=1.0)
    with pytest.raises(ValueError):
        ef.step(torch.randn(200), codec, beta=1.5)
    with pytest.raises(ValueError):
        ErrorFeedback().load_state_dict({"residual": torch.zeros(2, 2)})
    with pytest.raises(ValueError):
        ErrorFeedback().load_state_dict({"residual": torch.tensor([float("inf")])})
    with pytest.raises(ValueError):
        ErrorFeedback().load_state_dict({"other": torch.zeros(2)})
    fresh = ErrorFeedback()
    fresh.load_state_dict({})
    assert fresh.residual is None


# ------------------------------------------------------------------ hostile payloads

CHUNK, K, NUMEL = 64, 4, 64 * 3 + 10  # 3 full chunks + a partial one of 10
COUNT = 3 * K + K


def valid_parts():
    idx = [1, 5, 9, 63] * 3 + [0, 2, 4, 9]
    vals = [0.5, -1.0, 2.0, -0.0] * 4
    return idx, vals


def test_hand_built_payload_is_valid():
    idx, vals = valid_parts()
    y = topk(CHUNK, K).decode(build(CHUNK, K, NUMEL, idx, vals), NUMEL)
    assert y[64 + 5] == -1.0 and y[192 + 9] == -0.0 and y.shape == (NUMEL,)


def _mutate(idx_at=None, idx_val=None, val_at=None, val_val=None, **hdr):
    idx, vals = valid_parts()
    if idx_at is not None:
        idx[idx_at] = idx_val
    if val_at is not None:
        vals[val_at] = val_val
    h = dict(chunk=CHUNK, k=K, numel=NUMEL)
    h.update(hdr)
    return build(h.pop("chunk"), h.pop("k"), h.pop("numel"), idx, vals, **h)


GOOD = build(CHUNK, K, NUMEL, *valid_parts())

HOSTILE = {
    "empty": b"",
    "short header": GOOD[:10],
    "header only": GOOD[:TOPK_HEADER_BYTES],
    "truncated by one": GOOD[:-1],
    "truncated by two": GOOD[:-2],
    "extended": GOOD + b"\x00",
    "extended by a value": GOOD + b"\x00\x3c",
    "wrong magic": b"GSTX" + GOOD[4:],
    "wrong version": GOOD[:4] + b"\x02" + GOOD[5:],
    "header chunk": _mutate(chunk=128),
    "header k": _mutate(k=5),
    "header numel": _mutate(numel=NUMEL + 1),
    "header numel huge": _mutate(numel=2**64 - 1),
    "index >= chunk": _mutate(idx_at=3, idx_val=64),
    "index 65535": _mutate(idx_at=3, idx_val=65535),
    "index in padding": _mutate(idx_at=COUNT - 1, idx_val=10),
    "duplicate index": _mutate(idx_at=1, idx_val=1),
    "unsorted index": _mutate(idx_at=1, idx_val=0),
    "duplicate in last chunk": _mutate(idx_at=COUNT - 1, idx_val=4),
    "nan value": _mutate(val_at=2, val_val=float("nan")),
    "inf value": _mutate(val_at=5, val_val=float("inf")),
    "-inf value in last chunk": _mutate(val_at=COUNT - 1, val_val=float("-inf")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_payloads_raise_compression_error(name):
    with pytest.raises(CompressionError):
        topk(CHUNK, K).decode(HOSTILE[name], NUMEL)


@pytest.mark.parametrize("numel", [NUMEL - 1, NUMEL + 1, 0, 2**63])
def test_wrong_numel_raises_before_allocating(numel):
    with pytest.raises(CompressionError):
        topk(CHUNK, K).decode(GOOD, numel)


@pytest.mark.parametrize("payload", [None, "GSTK", 12, [1, 2]])
def test_non_bytes_payload(payload):
    with pytest.raises(CompressionError):
        topk(CHUNK, K).decode(payload, NUMEL)


@pytest.mark.parametrize("numel", [-1, 2**64, 3.0, True, None])
def test_bad_numel(numel):
    with pytest.raises(CompressionError):
        topk(CHUNK, K).decode(GOOD, numel)


def test_bytes_like_payloads_accepted():
    codec = topk(CHUNK, K)
    expected = codec.decode(GOOD, NUMEL)
    assert torch.equal(codec.decode(bytearray(GOOD), NUMEL), expected)
    assert torch.equal(codec.decode(memoryview(GOOD), NUMEL), expected)


def test_fuzz_mutations_only_succeed_or_raise_compression_error():
    codec = topk(CHUNK, K)
    torch.manual_seed(6)
    good = codec.encode(torch.randn(NUMEL))
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.6 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.7 and data:
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
            elif op < 0.8:
                del data[rng.randrange(len(data) + 1) :]
            elif op < 0.9:
                data[rng.randrange(len(data) + 1) : 0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif data:
                pos = rng.randrange(len(data))
                del data[pos : pos + rng.randint(1, 4)]
        try:
            y = codec.decode(bytes(data), NUMEL)
        except CompressionError:
            outcomes["error"] += 1
            continue
        assert y.shape == (NUMEL,) and y.dtype == torch.float32
        assert bool(torch.isfinite(y).all())
        outcomes["ok"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0
