"""The codecs that benchmarks/compression.py compares, and their figures on one synthetic vector.

Each entry is a codec configuration as a run spec would name it, plus the
training recipe it is compared under; hivemind's codecs are wrapped so that
they are measured the way ours are (bytes on the wire, encode and decode) and
can go through the node's error-feedback step like ours.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch

from protocol.compression import Codec, CodecSpec, get_codec

MB = 1e6
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One codec configuration as it would appear in a run spec."""

    name: str
    codec: str  # our codec name, "fp32" (no codec) or "hivemind:<class>"
    chunk: int = 4096
    k: int = 64
    value_bits: int = 2
    scale_group: int = 1
    # Training recipe (full mode).
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    ef_beta: float | None = None  # None: no error feedback
    first_round_k: int | None = None  # k of round 0 only (a denser first round); None: k
    # "all": the node's mean over every contribution; "senders": per coordinate, over the
    # contributions that sent it (a coordinate one peer of four sent is not divided by four).
    mean: str = "all"

    def spec(self, round_: int = 1) -> CodecSpec:
        k = self.first_round_k if round_ == 0 and self.first_round_k else self.k
        return CodecSpec(name=self.codec, chunk=self.chunk, k=k, value_bits=self.value_bits, scale_group=self.scale_group)

    @property
    def beta(self) -> float:
        """The run spec's `error_feedback_beta` for this entry: without error feedback it is 0, which
        makes the node's error-feedback step a plain encode of Δ."""
        return 0.0 if self.ef_beta is None else self.ef_beta

    def describe(self) -> dict:
        d = {"codec": self.codec}
        if not self.codec.startswith(("fp32", "hivemind", "dense")):
            d.update(chunk=self.chunk, k=self.k)
            if self.first_round_k:
                d.update(first_round_k=self.first_round_k)
            if self.codec != "topk":
                d.update(value_bits=self.value_bits, scale_group=self.scale_group)
        if self.mean != "all":
            d["mean"] = self.mean
        d["outer"] = {"lr": self.outer_lr, "momentum": self.outer_momentum, "nesterov": True}
        d["error_feedback_beta"] = self.ef_beta
        return d


# The node's default recipe (node/config.py): outer SGD at lr 3, error feedback with decay 0.9.
SPARSE = dict(chunk=4096, k=64, value_bits=2, scale_group=32, outer_lr=3.0, outer_momentum=0.0, ef_beta=0.9)
# SparseLoCo's published recipe (lr 1, decay 0.95), the default until issue 18: the ablations change it one thing at a time.
ANCHOR = {**SPARSE, "outer_lr": 1.0, "ef_beta": 0.95}

ENTRIES = [
    Entry("dense-fp32", "fp32"),
    # Not DiLoCo's recipe: dense fp32 with the sparse codecs' outer step, to separate the
    # effect of the recipe from that of compression.
    Entry("dense-fp32-sgd", "fp32", outer_lr=1.0, outer_momentum=0.0),
    Entry("hivemind-uniform8bit", "hivemind:Uniform8BitQuantization"),
    Entry("dense-fp16", "dense-fp16"),
    Entry("topk", "topk", ef_beta=0.95),  # the node's codec before this issue (fp16 values, u16 indices)
    Entry("sparseloco", "sparseloco", **SPARSE),
    Entry("sparseloco-ec", "sparseloco-ec", **SPARSE),
    Entry("demo-dct", "demo-dct", **SPARSE),
]
# Candidates for the short-run gap (issue 18): each changes one thing of `sparseloco`'s recipe.
# Named with --entries; not in the default run.
ABLATIONS = [
    Entry("sl-anchor", "sparseloco", **ANCHOR),
    Entry("sl-fp16-values", "topk", chunk=4096, k=64, outer_lr=1.0, outer_momentum=0.0, ef_beta=0.95),
    *(Entry(f"sl-k{k}", "sparseloco", **{**ANCHOR, "k": k}) for k in (32, 128, 256, 1024)),
    *(Entry(f"sl-beta{b}", "sparseloco", **{**ANCHOR, "ef_beta": b}) for b in (0.0, 0.5, 0.9, 0.99, 1.0)),
    *(Entry(f"sl-lr{lr}", "sparseloco", **{**ANCHOR, "outer_lr": lr}) for lr in (0.7, 1.5, 2.0, 3.0, 4.0)),
    Entry("sl-nesterov", "sparseloco", **{**ANCHOR, "outer_lr": 0.7, "outer_momentum": 0.9}),
    Entry("sl-1bit", "sparseloco", **{**ANCHOR, "value_bits": 1}),
    *(Entry(f"sl-first{k}", "sparseloco", **ANCHOR, first_round_k=k) for k in (256, 1024)),
    Entry("sl-senders", "sparseloco", **ANCHOR, mean="senders"),
    *(
        Entry(f"sl-lr{lr}-beta{b}", "sparseloco", **{**ANCHOR, "outer_lr": lr, "ef_beta": b})
        for lr in (2.0, 3.0, 4.0)
        for b in (0.8, 0.85, 0.9, 0.99)
    ),
    *(Entry(f"sl-senders-lr{lr}", "sparseloco", **{**ANCHOR, "outer_lr": lr}, mean="senders") for lr in (1.5, 2.0)),
    Entry("sl-1bit-lr2.0", "sparseloco", **{**ANCHOR, "outer_lr": 2.0, "value_bits": 1}),
]
HIVEMIND_ONLY = ["Float16Compression", "Quantile8BitQuantization"]  # codec figures only
HIVEMIND_NAMES = {"Float16Compression": "hivemind-float16", "Quantile8BitQuantization": "hivemind-quantile8bit"}


class HivemindCodec:
    """hivemind's own codec, measured as bytes on the wire (serialized protobuf)."""

    def __init__(self, cls_name: str):
        import hivemind.compression as hc

        self.impl = getattr(hc, cls_name)()
        self.hc = hc

    def encode(self, x: torch.Tensor) -> bytes:
        info = self.hc.CompressionInfo.from_tensor(x, key=0)
        return self.impl.compress(x, info).SerializeToString()

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """`device` as in our codecs' `decode`, so that `ErrorFeedback.step` can drive this one too."""
        from hivemind.proto import runtime_pb2

        msg = runtime_pb2.Tensor()
        msg.ParseFromString(payload)
        return self.impl.extract(msg).reshape(-1).float().to(device)


def make_codec(entry: Entry, round_: int = 1) -> Codec | HivemindCodec | None:
    """The entry's codec in round `round_`; None for raw fp32, which DiLoCo sends as is."""
    if entry.codec == "fp32":
        return None
    if entry.codec.startswith("hivemind:"):
        return HivemindCodec(entry.codec.split(":", 1)[1])
    return get_codec(entry.spec(round_))


def synthetic_pseudo_gradient(preset: str, seed: int = 0) -> tuple[torch.Tensor, int]:
    """A flat vector with the parameter shapes of ``preset`` (sorted-name order, as the node flattens)."""
    from transformers import LlamaForCausalLM

    from node.trainer.model import llama_config

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(preset))
    shapes = [tuple(p.shape) for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0])]
    del model
    numel = sum(math.prod(s) for s in shapes)
    out = torch.empty(numel, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    laplace = torch.distributions.Laplace(0.0, 1.0)
    offset = 0
    for shape in shapes:
        n = math.prod(shape)
        rows = shape[0] if len(shape) > 1 else 1
        view = out[offset : offset + n].view(rows, -1)
        torch.manual_seed(int(torch.randint(1 << 31, (1,), generator=gen)))
        view.copy_(laplace.sample(view.shape))
        view.mul_(torch.exp(0.5 * torch.randn(rows, 1, generator=gen)) * 1e-3)
        offset += n
    return out, len(shapes)


def time_call(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best wall time of `repeat` calls (the CPU is shared: the best is the least disturbed) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def codec_figures(entries: list[Entry], x: torch.Tensor, repeat: int) -> list[dict]:
    """Bytes, ratio to fp32, encode/decode MB/s and one step's relative reconstruction error of each entry on `x`."""
    numel = x.numel()
    fp32_bytes = 4 * numel
    norm = float(x.double().norm())
    rows = []
    for entry in entries:
        if entry.codec == "fp32":
            rows.append(dict(name=entry.name, bytes=fp32_bytes, ratio_vs_fp32=1.0, encode_MBps=None, decode_MBps=None, rel_error=0.0))
            continue
        codec = make_codec(entry)
        n = 1 if entry.codec.startswith("hivemind") else repeat  # hivemind's 8-bit encoders take ~10 s here
        t_enc, payload = time_call(partial(codec.encode, x), n)
        t_dec, y = time_call(partial(codec.decode, payload, numel), n)
        err = float((y.double() - x.double()).norm()) / norm
        rows.append(
            dict(
                name=entry.name,
                bytes=len(payload),
                ratio_vs_fp32=fp32_bytes / len(payload),
                encode_MBps=fp32_bytes / MB / t_enc,
                decode_MBps=fp32_bytes / MB / t_dec,
                rel_error=err,
            )
        )
        print(
            f"  {entry.name:<24} {len(payload):>12,d} B  x{fp32_bytes / len(payload):8.1f}  "
            f"enc {fp32_bytes / MB / t_enc:8.1f} MB/s  dec {fp32_bytes / MB / t_dec:8.1f} MB/s  err {err:.4f}",
            flush=True,
        )
        del payload, y
        gc.collect()
    return rows
