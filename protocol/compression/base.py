"""Codec interface shared by every pseudo-gradient codec.

A codec turns a flat float32 pseudo-gradient (or error-feedback buffer) into
bytes and back. Everything here is pure: no network, no disk, deterministic.

* :class:`CodecSpec` names a codec and its parameters; it is part of the run
  spec and of every ContributionMeta, so it is validated on construction.
* :class:`Codec` is the protocol every codec implements.
* :func:`get_codec` looks a codec up by ``spec.name``;
  :func:`register_codec` adds one (used by the codec modules themselves).

Decoding treats the payload as hostile: every problem raises
:class:`CompressionError` (a ``ValueError``) saying what was wrong, never any
other exception, and sizes are checked before anything is allocated.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = [
    "CompressionError",
    "CodecSpec",
    "Codec",
    "get_codec",
    "register_codec",
    "registered_codecs",
    "MAX_NUMEL",
]

# numel travels as u64 in payload headers; larger values are never valid.
MAX_NUMEL = (1 << 64) - 1


class CompressionError(ValueError):
    """A payload (or codec spec) is malformed, inconsistent or out of bounds."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CodecSpec:
    """Which codec and with which parameters.

    ``chunk``: the flat vector is zero-padded to a multiple of ``chunk`` and
    compressed chunk by chunk; a power of two in [64, 65536] (so that an index
    within a chunk fits in 16 bits). ``k``: entries kept per chunk,
    1 <= k <= chunk.

    Low-bit codecs (``sparseloco``, ``sparseloco-ec``, ``demo-dct``) also use:
    ``value_bits``: bits per kept value, 1 (sign times a scale) or 2 (sign and
    one of two magnitude levels); ``scale_group``: how many consecutive chunks
    share one set of quantization levels, in [1, 65536]. Codecs that do not
    use a field ignore it.
    """

    name: str
    chunk: int
    k: int
    value_bits: int = 2
    scale_group: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CompressionError(f"codec name must be a non-empty string, got {self.name!r}")
        if not _is_int(self.chunk):
            raise CompressionError(f"codec chunk must be an int, got {type(self.chunk).__name__}")
        if not (64 <= self.chunk <= 65536) or self.chunk & (self.chunk - 1):
            raise CompressionError(f"codec chunk must be a power of two in [64, 65536], got {self.chunk}")
        if not _is_int(self.k):
            raise CompressionError(f"codec k must be an int, got {type(self.k).__name__}")
        if not (1 <= self.k <= self.chunk):
            raise CompressionError(f"codec k must be in [1, chunk={self.chunk}], got {self.k}")
        if not _is_int(self.value_bits) or self.value_bits not in (1, 2):
            raise CompressionError(f"codec value_bits must be 1 or 2, got {self.value_bits!r}")
        if not _is_int(self.scale_group) or not (1 <= self.scale_group <= 65536):
            raise CompressionError(f"codec scale_group must be an int in [1, 65536], got {self.scale_group!r}")


@runtime_checkable
class Codec(Protocol):
    """A pseudo-gradient codec bound to one :class:`CodecSpec`."""

    @property
    def spec(self) -> CodecSpec: ...

    def encode(self, vector: torch.Tensor) -> bytes:
        """Compress a 1-D float tensor (any device). Deterministic: the same
        input gives the same bytes. Raises CompressionError for non-finite input."""
        ...

    def decode(self, payload: bytes, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Decompress into a 1-D float32 tensor of length ``numel`` on ``device``.

        A pure function of (spec, payload, numel). Any malformed payload raises
        CompressionError."""
        ...

    def max_payload_bytes(self, numel: int) -> int:
        """Exact upper bound on the payload length for a vector of ``numel``
        elements; the network layer refuses anything longer unread."""
        ...


CodecFactory = Callable[[CodecSpec], Codec]
_REGISTRY: dict[str, CodecFactory] = {}


def register_codec(name: str, factory: CodecFactory) -> None:
    """Register ``factory(spec) -> Codec`` under ``name`` (once per name)."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"codec {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_codecs() -> tuple[str, ...]:
    """Names of the registered codecs, sorted."""
    return tuple(sorted(_REGISTRY))


def get_codec(spec: CodecSpec) -> Codec:
    """The codec for ``spec``; unknown names raise CompressionError."""
    if not isinstance(spec, CodecSpec):
        raise CompressionError(f"expected a CodecSpec, got {type(spec).__name__}")
    factory = _REGISTRY.get(spec.name)
    if factory is None:
        known = ", ".join(registered_codecs()) or "none"
        raise CompressionError(f"unknown codec {spec.name!r} (known: {known})")
    return factory(spec)


def check_numel(numel: object) -> int:
    """Validate a caller-supplied element count (any integer type, not bool)."""
    if isinstance(numel, bool):
        raise CompressionError("numel must be an int, got bool")
    try:
        numel = operator.index(numel)
    except TypeError:
        raise CompressionError(f"numel must be an int, got {type(numel).__name__}") from None
    if not (0 <= numel <= MAX_NUMEL):
        raise CompressionError(f"numel must be in [0, 2**64), got {numel}")
    return numel


def check_vector(vector: object) -> torch.Tensor:
    if not isinstance(vector, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(vector).__name__}")
    if vector.dim() != 1:
        raise CompressionError(f"expected a 1-D tensor, got shape {tuple(vector.shape)}")
    if not vector.dtype.is_floating_point:
        raise TypeError(f"expected a floating point tensor, got {vector.dtype}")
    return vector.detach().to(torch.float32).contiguous()


def as_bytes(payload: object) -> bytes:
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        raise CompressionError(f"payload must be bytes, got {type(payload).__name__}")
    return payload


class NamedCodec:
    """What every codec class shares: it is built from a spec that names it."""

    name = ""

    def __init__(self, spec: CodecSpec) -> None:
        if not isinstance(spec, CodecSpec):
            raise CompressionError(f"expected a CodecSpec, got {type(spec).__name__}")
        if spec.name != self.name:
            raise CompressionError(f"spec names codec {spec.name!r}, not {self.name!r}")
        self._spec = spec

    @property
    def spec(self) -> CodecSpec:
        return self._spec
