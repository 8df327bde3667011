"""Versioned msgpack envelopes with strict, bounded decoding into typed dataclasses.

Everything a node receives from the network passes through `decode`, so it is
written for hostile input: sizes are checked before parsing, msgpack's own
length limits are set, and every field is checked against its declared type
and bounds. Any problem raises `ProtocolError` naming the message and field,
with a `Rejection` saying what kind of problem it is.

Envelope layout (msgpack): ``[WIRE_VERSION, type_name, [field values...]]``.
Field values appear in dataclass declaration order; nested messages are
encoded as lists the same way. Only int, float, bool, str, bytes, nested
dataclasses and homogeneous tuples are allowed, `encode` writes each of them
in exactly one way, and `decode` accepts only that way, so the encoding
doubles as the canonical bytes that signatures cover.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import msgpack

WIRE_VERSION = 1
MAX_ENVELOPE_BYTES = 1 << 20  # no message type may declare more than this
MAX_INT = (1 << 63) - 1


class Rejection(StrEnum):
    """Why a peer's input was refused, as data: whoever counts refusals (the DHT
    record validator and the push inbox for a node's round report, the
    bootstrap's ``gradswarm_bootstrap_records_rejected_total``) counts by it.

    The values are metric labels and report keys, so they stay put:
    snake_case, as Prometheus labels usually are and the bootstrap's always were.
    """

    MALFORMED = "malformed"  # not msgpack, not a wire message, a bad field, a kind the DHT does not hold
    OVERSIZED = "oversized"  # over the size bound of its kind, refused before parsing
    UNSIGNED = "unsigned"  # no signature, or a truncated one
    BAD_SIGNATURE = "bad_signature"  # a signature that does not verify, or a signer that is no sr25519 address
    WRONG_RUN = "wrong_run"  # validly signed, for another run
    MISPLACED = "misplaced"  # stored under a key or subkey its content does not name
    TTL = "ttl"  # a record that expires further ahead than any record may
    OUT_OF_WINDOW = "out_of_window"  # a pushed record for a round too far from the current one
    UNREGISTERED = "unregistered"  # the signer, or a stream's caller, is not registered on the subnet
    NO_PERMIT = "no_permit"  # a manifest from a hotkey without a validator permit
    STORE_CAP = "store_cap"  # a registered hotkey past its store cap for a kind and round
    CHAIN_UNAVAILABLE = "chain_unavailable"  # the chain could not be read, so nothing could be admitted


class ProtocolError(ValueError):
    """Input that does not follow the protocol; `reason` says how (malformed unless told)."""

    def __init__(self, message: str, *, reason: Rejection = Rejection.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


def rejection_of(error: BaseException) -> Rejection:
    """What a refusal counts as: a ProtocolError's reason. Anything else that
    hostile bytes made a parser raise (msgpack's own errors, say) is malformed."""
    return error.reason if isinstance(error, ProtocolError) else Rejection.MALFORMED


T = TypeVar("T")

_REGISTRY: dict[str, type] = {}
_MAX_BYTES: dict[type, int] = {}


def message(type_name: str, max_bytes: int) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass as a wire message with its own size ceiling."""

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        if type_name in _REGISTRY:
            raise TypeError(f"duplicate wire type {type_name!r}")
        if max_bytes > MAX_ENVELOPE_BYTES:
            raise TypeError(f"{type_name}: max_bytes above MAX_ENVELOPE_BYTES")
        cls.TYPE_NAME = type_name  # type: ignore[attr-defined]
        _REGISTRY[type_name] = cls
        _MAX_BYTES[cls] = max_bytes
        return cls

    return register


def bounded(*, max_len: int | None = None, exact_len: int | None = None, default: Any = dataclasses.MISSING) -> Any:
    """Declare a length bound for a str/bytes/tuple field (strings are bounded in UTF-8 bytes)."""
    meta = {"max_len": max_len, "exact_len": exact_len}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def type_name_of(cls: type) -> str:
    return cls.TYPE_NAME  # type: ignore[attr-defined]


def max_bytes_of(cls: type) -> int:
    return _MAX_BYTES[cls]


# ----------------------------------------------------------------------------- encoding


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return [_to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def encode(msg: Any) -> bytes:
    """Serialize a registered message; refuses to emit anything a peer would reject."""
    cls = type(msg)
    if cls not in _MAX_BYTES:
        raise ProtocolError(f"{cls.__name__} is not a registered wire message")
    # Same checks as decode, so a node never sends what its peers reject, and the
    # converted values (e.g. int -> float) make the bytes canonical.
    checked = _build(cls, _to_plain(msg), type_name_of(cls))
    data = msgpack.packb([WIRE_VERSION, type_name_of(cls), _to_plain(checked)], use_bin_type=True)
    if len(data) > _MAX_BYTES[cls]:
        raise ProtocolError(f"{type_name_of(cls)}: encoded size {len(data)} exceeds limit {_MAX_BYTES[cls]}", reason=Rejection.OVERSIZED)
    return data


# ----------------------------------------------------------------------------- decoding


def decode(data: bytes, expected: type[T] | None = None) -> T:
    """Parse untrusted bytes into a message; `expected` pins the message type."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    ceiling = _MAX_BYTES[expected] if expected is not None else MAX_ENVELOPE_BYTES
    if len(data) > ceiling:
        raise ProtocolError(f"message of {len(data)} bytes exceeds limit {ceiling}", reason=Rejection.OVERSIZED)
    data = bytes(data)
    try:
        envelope = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=ceiling,
            max_bin_len=ceiling,
            max_array_len=4096,
            max_map_len=0,  # no maps anywhere in the protocol
            max_ext_len=0,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise ProtocolError(f"malformed msgpack: {e}") from None
    except (ValueError, TypeError, OverflowError) as e:  # truncated input, limits hit
        raise ProtocolError(f"malformed msgpack: {e}") from None
    if not isinstance(envelope, list) or len(envelope) != 3:
        raise ProtocolError("envelope must be [version, type, fields]")
    version, type_name, fields = envelope
    if version != WIRE_VERSION or isinstance(version, bool):
        raise ProtocolError(f"unsupported wire version {version!r} (this node speaks {WIRE_VERSION})")
    if not isinstance(type_name, str) or type_name not in _REGISTRY:
        raise ProtocolError(f"unknown message type {type_name!r}")
    cls = _REGISTRY[type_name]
    if expected is not None and cls is not expected:
        raise ProtocolError(f"expected {type_name_of(expected)}, got {type_name}")
    if len(data) > _MAX_BYTES[cls]:
        raise ProtocolError(f"{type_name}: {len(data)} bytes exceeds limit {_MAX_BYTES[cls]}", reason=Rejection.OVERSIZED)
    msg = _build(cls, fields, type_name)
    # msgpack spells some values several ways (an int in 1 or 9 bytes, a float in 5 or 9, a str with a
    # longer length field). Only the spelling `encode` writes is taken, so that a message has one
    # encoding: its sha256 names it (the DHT's store cap counts records by it) and it re-encodes within
    # its bound (a float32 spelling would fit where the canonical float64 one does not).
    if msgpack.packb([WIRE_VERSION, type_name, _to_plain(msg)], use_bin_type=True) != data:
        raise ProtocolError(f"{type_name}: not the canonical encoding of its fields")
    return msg


def _build(cls: type, values: Any, where: str) -> Any:
    fields = dataclasses.fields(cls)
    if not isinstance(values, list) or len(values) != len(fields):
        raise ProtocolError(f"{where}: expected {len(fields)} fields")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f, raw in zip(fields, values, strict=True):
        kwargs[f.name] = _convert(hints[f.name], raw, f.metadata, f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except ProtocolError:
        raise
    except (ValueError, TypeError) as e:  # __post_init__ invariants
        raise ProtocolError(f"{where}: {e}") from None


def _check_len(value: Any, meta: typing.Mapping[str, Any], where: str, size: int) -> None:
    exact, most = meta.get("exact_len"), meta.get("max_len")
    if exact is not None and size != exact:
        raise ProtocolError(f"{where}: length {size}, expected exactly {exact}")
    if most is not None and size > most:
        raise ProtocolError(f"{where}: length {size} exceeds {most}")


def _convert(hint: Any, raw: Any, meta: typing.Mapping[str, Any], where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{where}: only tuple[X, ...] fields are supported")
        if not isinstance(raw, (list, tuple)):
            raise ProtocolError(f"{where}: expected a list")
        _check_len(raw, meta, where, len(raw))
        return tuple(_convert(args[0], item, {}, f"{where}[{i}]") for i, item in enumerate(raw))
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(raw):
            raw = _to_plain(raw)
        return _build(hint, raw, where)
    if hint is bool:
        if not isinstance(raw, bool):
            raise ProtocolError(f"{where}: expected bool")
        return raw
    if hint is int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise ProtocolError(f"{where}: expected int")
        if not 0 <= raw <= MAX_INT:
            raise ProtocolError(f"{where}: {raw} out of range [0, 2^63)")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, (float, int)):
            raise ProtocolError(f"{where}: expected float")
        if not math.isfinite(raw):
            raise ProtocolError(f"{where}: not finite")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ProtocolError(f"{where}: expected str")
        _check_len(raw, meta, where, len(raw.encode("utf-8", "surrogatepass")))
        return raw
    if hint is bytes:
        if not isinstance(raw, (bytes, bytearray)):
            raise ProtocolError(f"{where}: expected bytes")
        _check_len(raw, meta, where, len(raw))
        return bytes(raw)
    raise TypeError(f"{where}: unsupported field type {hint!r}")
