"""Pseudo-gradient codecs (pure: no network, no disk, deterministic).

    spec = CodecSpec(name="topk", chunk=4096, k=64)
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
from .feedback import ErrorFeedback
from .topk import TOPK_HEADER_BYTES, TOPK_MAGIC, TOPK_VERSION, TopKCodec

__all__ = [
    "MAX_NUMEL",
    "Codec",
    "CodecSpec",
    "CompressionError",
    "ErrorFeedback",
    "TOPK_HEADER_BYTES",
    "TOPK_MAGIC",
    "TOPK_VERSION",
    "TopKCodec",
    "get_codec",
    "register_codec",
    "registered_codecs",
]
