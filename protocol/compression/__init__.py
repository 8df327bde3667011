"""Pseudo-gradient codecs (pure: no network, no disk, deterministic).

Codecs by name: ``topk`` (fp16 values, u16 indices), ``sparseloco`` (12-bit
indices at chunk 4096, 2-bit values), ``sparseloco-ec`` (the same selection,
Golomb-Rice/bitmap coded indices), ``demo-dct`` (chunked DCT then top-k),
``dense-fp16`` (baseline).

    spec = CodecSpec(name="sparseloco-ec", chunk=4096, k=64, value_bits=2, scale_group=32)
    codec = get_codec(spec)
    payload = ErrorFeedback().step(delta, codec, beta=1.0)   # bytes
    dense = codec.decode(payload, numel)                      # float32, len numel

Every decoding problem raises CompressionError (a ValueError).
"""

from .base import (
    MAX_NUMEL,
    Codec,
    CodecSpec,
    CompressionError,
    get_codec,
    register_codec,
    registered_codecs,
)
from .dct import DemoDCTCodec
from .dense import DenseFP16Codec
from .feedback import ErrorFeedback
from .sparseloco import SPARSE_HEADER_BYTES, SparseLoCoCodec
from .sparseloco_ec import SparseLoCoECCodec
from .topk import TOPK_HEADER_BYTES, TOPK_MAGIC, TOPK_VERSION, TopKCodec

__all__ = [
    "MAX_NUMEL",
    "Codec",
    "CodecSpec",
    "CompressionError",
    "DemoDCTCodec",
    "DenseFP16Codec",
    "ErrorFeedback",
    "SPARSE_HEADER_BYTES",
    "SparseLoCoCodec",
    "SparseLoCoECCodec",
    "TOPK_HEADER_BYTES",
    "TOPK_MAGIC",
    "TOPK_VERSION",
    "TopKCodec",
    "get_codec",
    "register_codec",
    "registered_codecs",
]
