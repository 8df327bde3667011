"""sr25519 signatures over canonical bytes, domain-separated by run id and message type.

The signed bytes are ``DOMAIN || run_id || type_name || 0x00 || wire(msg with empty
signature)``: a signature made for one run or one message type verifies nowhere
else. Keys are the bittensor SDK's `Keypair`, so miners sign with the hotkeys
they already registered.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Protocol, TypeVar

from protocol import wire
from protocol.messages import SIGNATURE_BYTES
from protocol.wire import ProtocolError, Rejection

DOMAIN = b"gradswarm/sig/v1\x00"

M = TypeVar("M")


class SignatureError(ProtocolError):
    """A message whose signature, signer or run does not check out."""


class Signer(Protocol):
    """What signing needs of a key: `bittensor.sp_core.Keypair` satisfies it."""

    ss58_address: str

    def sign(self, data: bytes) -> bytes: ...


def signing_bytes(msg: object) -> bytes:
    unsigned = dataclasses.replace(msg, signature=b"")  # type: ignore[type-var]
    return DOMAIN + msg.run_id + wire.type_name_of(type(msg)).encode() + b"\x00" + wire.encode(unsigned)  # type: ignore[attr-defined]


def sign(msg: M, keypair: Signer) -> M:
    if msg.hotkey != keypair.ss58_address:  # type: ignore[attr-defined]
        raise SignatureError("message hotkey differs from the signing key", reason=Rejection.BAD_SIGNATURE)
    signature = keypair.sign(signing_bytes(msg))
    return dataclasses.replace(msg, signature=bytes(signature))  # type: ignore[type-var]


@lru_cache(maxsize=4096)
def _verifier(hotkey: str):
    from bittensor.sp_core import (
        Keypair,  # the SDK is slow to import; only signers and verifiers need it
    )

    try:
        return Keypair(ss58_address=hotkey)
    except (ValueError, TypeError) as e:
        raise SignatureError(f"hotkey {hotkey[:64]!r} is not an sr25519 ss58 address: {e}", reason=Rejection.BAD_SIGNATURE) from None


def verify(msg: object, run_id: bytes) -> None:
    """Raise `SignatureError` unless `msg` is signed by its own hotkey for `run_id`."""
    if msg.run_id != run_id:  # type: ignore[attr-defined]
        raise SignatureError("message belongs to another run", reason=Rejection.WRONG_RUN)
    signature = msg.signature  # type: ignore[attr-defined]
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError("missing or truncated signature", reason=Rejection.UNSIGNED)
    verifier = _verifier(msg.hotkey)  # type: ignore[attr-defined]
    try:
        ok = verifier.verify(signing_bytes(msg), signature)
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise SignatureError(
            f"bad signature on {wire.type_name_of(type(msg))} from {msg.hotkey}",  # type: ignore[attr-defined]
            reason=Rejection.BAD_SIGNATURE,
        )
