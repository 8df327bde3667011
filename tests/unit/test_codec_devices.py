"""The sparse encoders run in torch on the vector's device: the same bytes as the numpy encoder they
replaced, and the same bytes on every device."""

from __future__ import annotations

import hashlib

import pytest
import torch

from protocol.compression import CodecSpec, get_codec, quant

# sha256 (first 16 hex digits) of the payloads the numpy encoder (commit 1f7c0da) made of case(seed)
# with chunk 256, k 9, scale group 3.
NUMPY_ENCODER = {
    ("sparseloco", 1, 0): "8c82fb0d1634fb4e",
    ("sparseloco", 1, 1): "23ec7e63881f9cef",
    ("sparseloco", 1, 2): "f5da4dd730328f06",
    ("sparseloco", 1, 3): "27e5b8f335d22153",
    ("sparseloco", 2, 0): "e656ad58c57e8813",
    ("sparseloco", 2, 1): "75db46c2bfb6a851",
    ("sparseloco", 2, 2): "c6f2516512aa2e80",
    ("sparseloco", 2, 3): "2f5935d6b3f6b18f",
    ("sparseloco-ec", 1, 0): "83869eb6277a9a6b",
    ("sparseloco-ec", 1, 1): "0fc371e495e7e832",
    ("sparseloco-ec", 1, 2): "5bf19a40127d00eb",
    ("sparseloco-ec", 1, 3): "1434461ea61c9191",
    ("sparseloco-ec", 2, 0): "2e3f87ddd1765446",
    ("sparseloco-ec", 2, 1): "0022debc79431d29",
    ("sparseloco-ec", 2, 2): "6da987bf4f516319",
    ("sparseloco-ec", 2, 3): "57aa4be265f15b0d",
    ("demo-dct", 1, 0): "e1bbd827eafa86dd",
    ("demo-dct", 1, 1): "00bdf2d2a6fbeb9a",
    ("demo-dct", 1, 2): "a3acd666dc896127",
    ("demo-dct", 1, 3): "4691f52501ff9c30",
    ("demo-dct", 2, 0): "cba9b8fcf96c595f",
    ("demo-dct", 2, 1): "30908cf6f01c6e28",
    ("demo-dct", 2, 2): "96282e9586813ee3",
    ("demo-dct", 2, 3): "2c4f28d10b53e063",
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def case(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 30000, (1,), generator=g))
    x = torch.randn(n, generator=g) * torch.rand(n, generator=g).pow(3)
    if seed % 3 == 0:
        x = torch.round(x * 4) / 4  # dyadic values: means on binary16 ties
    return x


def payload(name: str, value_bits: int, x: torch.Tensor) -> bytes:
    return get_codec(CodecSpec(name=name, chunk=256, k=9, value_bits=value_bits, scale_group=3)).encode(x)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("key", sorted(NUMPY_ENCODER))
def test_payload_bytes_are_the_numpy_encoders(key, device):
    name, value_bits, seed = key
    if name == "demo-dct" and device != "cpu":
        pytest.skip("the DCT runs in scipy on the host")
    got = hashlib.sha256(payload(name, value_bits, case(seed).to(device))).hexdigest()[:16]
    assert got == NUMPY_ENCODER[key]


def test_levels_are_rounded_once_to_binary16():
    # 1 + 2**-11 + 2**-40 lies just above a binary16 tie: the nearest binary16 is 1 + 2**-10. Through
    # float32 it first becomes the tie itself, which rounds to even: 1.0.
    level = torch.tensor([1 + 2**-11 + 2**-40, 1 + 2**-11 - 2**-40, 1 + 2**-11, 0.0, 3.0], dtype=torch.float64)
    assert level.to(torch.float32).to(torch.float16)[0].item() == 1.0
    assert quant._to_binary16(level).tolist() == [1 + 2**-10, 1.0, 1.0, 0.0, 3.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["topk", "sparseloco", "sparseloco-ec"])
def test_cuda_payloads_equal_cpu_payloads_at_run_shapes(name):
    x = torch.randn(3_000_000, generator=torch.Generator().manual_seed(7)) * torch.rand(3_000_000).pow(3)
    codec = get_codec(CodecSpec(name=name, chunk=4096, k=64, value_bits=2, scale_group=32))
    assert codec.encode(x.cuda()) == codec.encode(x)


@pytest.mark.parametrize("seed", range(5))
def test_varying_fields_and_bit_streams_pack_bit_by_bit(seed):
    from protocol.compression.bitpack import bit_stream, pack_varying

    g = torch.Generator().manual_seed(seed)
    widths = torch.randint(0, 18, (int(torch.randint(0, 300, (1,), generator=g)),), generator=g)
    values = torch.randint(0, 1 << 17, widths.shape, generator=g) & ((1 << widths) - 1)
    bits = [int(v) >> b & 1 for v, w in zip(values.tolist(), widths.tolist(), strict=True) for b in range(w)]
    expect = bytes(sum(bit << i for i, bit in enumerate(bits[j : j + 8])) for j in range(0, len(bits), 8))
    assert pack_varying(values, widths).numpy().tobytes() == expect
    ones = torch.tensor([i for i, bit in enumerate(bits) if bit], dtype=torch.int64)
    assert bit_stream(ones, len(bits)).numpy().tobytes() == expect
