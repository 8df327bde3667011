import dataclasses

import pytest

from protocol import signing, wire
from protocol.messages import ContributionMeta, StateAnnouncement
from protocol.signing import SignatureError

RUN = b"\x11" * 32


def meta(hotkey, run=RUN, round_=1):
    return ContributionMeta(
        run_id=run, round=round_, hotkey=hotkey, peer_id=b"p", digest=b"\x00" * 32, nbytes=10, codec="topk", trained_from=b"\x03" * 32
    )


def test_signed_message_verifies_after_wire_round_trip(alice):
    signed = signing.sign(meta(alice.ss58_address), alice)
    received = wire.decode(wire.encode(signed), ContributionMeta)
    signing.verify(received, RUN)


def test_cannot_sign_for_another_hotkey(alice, bob):
    with pytest.raises(SignatureError, match="differs"):
        signing.sign(meta(bob.ss58_address), alice)


def test_forged_signature_rejected(alice, bob):
    # Bob signs bytes claiming to be Alice's message.
    forged = dataclasses.replace(meta(alice.ss58_address), signature=bob.sign(signing.signing_bytes(meta(alice.ss58_address))))
    with pytest.raises(SignatureError, match="bad signature"):
        signing.verify(forged, RUN)


def test_tampered_field_rejected(alice):
    signed = signing.sign(meta(alice.ss58_address), alice)
    with pytest.raises(SignatureError, match="bad signature"):
        signing.verify(dataclasses.replace(signed, round=2), RUN)


def test_wrong_run_rejected(alice):
    other_run = b"\x22" * 32
    signed = signing.sign(meta(alice.ss58_address, run=other_run), alice)
    with pytest.raises(SignatureError, match="another run"):
        signing.verify(signed, RUN)
    # Relabelling the run id breaks the signature: it covers the run.
    with pytest.raises(SignatureError, match="bad signature"):
        signing.verify(dataclasses.replace(signed, run_id=RUN), RUN)


def test_domain_separation_between_types(alice):
    """A signature made for one message type does not verify on another type with the same fields."""
    a = StateAnnouncement(run_id=RUN, round=1, hotkey=alice.ss58_address, peer_id=b"p", state_hash=b"\x00" * 32)
    signed = signing.sign(a, alice)
    assert signing.signing_bytes(a) != signing.signing_bytes(meta(alice.ss58_address))
    signing.verify(signed, RUN)


def test_missing_or_short_signature(alice):
    with pytest.raises(SignatureError, match="missing"):
        signing.verify(meta(alice.ss58_address), RUN)
    with pytest.raises(SignatureError, match="missing"):
        signing.verify(dataclasses.replace(meta(alice.ss58_address), signature=b"x" * 10), RUN)


def test_garbage_hotkey(alice):
    bad = dataclasses.replace(signing.sign(meta(alice.ss58_address), alice), hotkey="not-an-address")
    with pytest.raises(SignatureError):
        signing.verify(bad, RUN)
