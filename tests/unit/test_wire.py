import contextlib
import dataclasses
import pickle

import msgpack
import pytest

from protocol import wire
from protocol.messages import (
    ContributionMeta,
    FetchRequest,
    ManifestEntry,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
)
from protocol.wire import ProtocolError, Rejection, rejection_of

RUN = bytes(range(32))
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
DIGEST = b"\xab" * 32


def samples():
    return [
        PeerBinding(run_id=RUN, hotkey=HOTKEY, peer_id=b"\x00" * 38, expires_at=123.5, signature=b"s" * 64),
        ContributionMeta(
            run_id=RUN, round=7, hotkey=HOTKEY, peer_id=b"p" * 38, digest=DIGEST, nbytes=1000, codec="topk", trained_from=DIGEST
        ),
        RoundManifest(
            run_id=RUN,
            round=3,
            hotkey=HOTKEY,
            base_state_hash=DIGEST,
            entries=(ManifestEntry(HOTKEY, DIGEST), ManifestEntry("other", b"\x01" * 32)),
            result_state_hash=b"\x02" * 32,
        ),
        StateAnnouncement(run_id=RUN, round=4, hotkey=HOTKEY, peer_id=b"p", state_hash=DIGEST),
        FetchRequest(run_id=RUN, kind="payload", digest=DIGEST),
    ]


@pytest.mark.parametrize("msg", samples(), ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    data = wire.encode(msg)
    assert wire.decode(data) == msg
    assert wire.decode(data, type(msg)) == msg
    assert wire.encode(wire.decode(data)) == data  # canonical: re-encoding gives the same bytes


def test_int_in_float_field_is_canonicalised():
    a = PeerBinding(run_id=RUN, hotkey=HOTKEY, peer_id=b"p", expires_at=5)
    b = PeerBinding(run_id=RUN, hotkey=HOTKEY, peer_id=b"p", expires_at=5.0)
    assert wire.encode(a) == wire.encode(b)


def test_wrong_expected_type():
    data = wire.encode(samples()[0])
    with pytest.raises(ProtocolError, match="expected contribution_meta"):
        wire.decode(data, ContributionMeta)


@pytest.mark.parametrize("cut", [0, 1, 5, 20, -1])
def test_truncated(cut):
    data = wire.encode(samples()[1])
    with pytest.raises(ProtocolError):
        wire.decode(data[:cut])


def test_trailing_garbage():
    with pytest.raises(ProtocolError, match="malformed"):
        wire.decode(wire.encode(samples()[1]) + b"\x00")


def test_oversized_rejected_before_parsing():
    with pytest.raises(ProtocolError, match="exceeds limit") as caught:
        wire.decode(b"\x90" * (wire.MAX_ENVELOPE_BYTES + 1))
    assert caught.value.reason is Rejection.OVERSIZED
    big = msgpack.packb([1, "peer_binding", [RUN, HOTKEY, b"x" * 600, 1.0, b""]])
    with pytest.raises(ProtocolError, match="exceeds limit") as caught:
        wire.decode(big)
    assert caught.value.reason is Rejection.OVERSIZED


def test_rejections_carry_their_reason_as_data():
    with pytest.raises(ProtocolError) as caught:
        wire.decode(b"\xc1 garbage")
    assert caught.value.reason is Rejection.MALFORMED  # the default: anything that does not parse
    assert rejection_of(caught.value) == "malformed"
    assert rejection_of(msgpack.ExtraData(1, b"")) is Rejection.MALFORMED  # not a ProtocolError at all
    error = ProtocolError("too late", reason=Rejection.OUT_OF_WINDOW)
    assert rejection_of(error) is Rejection.OUT_OF_WINDOW
    assert pickle.loads(pickle.dumps(error)).reason is Rejection.OUT_OF_WINDOW  # survives a trip between processes


def _raw(type_name, fields, version=1):
    return msgpack.packb([version, type_name, fields], use_bin_type=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_raw("peer_binding", [RUN, HOTKEY, b"p", 1.0, b""], version=2), "unsupported wire version"),
        (_raw("no_such_type", []), "unknown message type"),
        (_raw("peer_binding", [RUN, HOTKEY, b"p", 1.0]), "expected 5 fields"),
        (_raw("peer_binding", [RUN[:31], HOTKEY, b"p", 1.0, b""]), "expected exactly 32"),
        (_raw("peer_binding", [RUN, 12, b"p", 1.0, b""]), "expected str"),
        (_raw("peer_binding", [RUN, HOTKEY, "p", 1.0, b""]), "expected bytes"),
        (_raw("peer_binding", [RUN, HOTKEY, b"p", float("nan"), b""]), "not finite"),
        (_raw("peer_binding", [RUN, HOTKEY, b"p", True, b""]), "expected float"),
        (_raw("contribution_meta", [RUN, -1, HOTKEY, b"p", DIGEST, 1, "topk", DIGEST, b"", [], b""]), "out of range"),
        (_raw("contribution_meta", [RUN, True, HOTKEY, b"p", DIGEST, 1, "topk", DIGEST, b"", [], b""]), "expected int"),
        (_raw("peer_binding", [RUN, "x" * 65, b"p", 1.0, b""]), "exceeds 64"),
        (_raw("round_manifest", [RUN, 1, HOTKEY, DIGEST, [[HOTKEY, DIGEST, 1.0], [HOTKEY, DIGEST, 1.0]], DIGEST, b""]), "twice"),
        (_raw("round_manifest", [RUN, 1, HOTKEY, DIGEST, [[HOTKEY, DIGEST, 0.1]], DIGEST, b""]), "outside"),
        (_raw("round_manifest", [RUN, 1, HOTKEY, DIGEST, [[HOTKEY, DIGEST, float("nan")]], DIGEST, b""]), "not finite"),
        (_raw("round_manifest", [RUN, 1, HOTKEY, DIGEST, "nope", DIGEST, b""]), "expected a list"),
        (_raw("fetch_request", [RUN, "secrets", DIGEST]), "unknown fetch kind"),
        (msgpack.packb({"a": 1}), "malformed"),
        (msgpack.packb("just a string"), "envelope"),
        (b"\xc1", "malformed"),
    ],
)
def test_malformed_inputs_name_the_problem(data, message):
    with pytest.raises(ProtocolError, match=message):
        wire.decode(data)


def test_non_bytes_input():
    with pytest.raises(ProtocolError, match="expected bytes"):
        wire.decode("text")  # type: ignore[arg-type]


def test_encode_refuses_invalid_messages():
    bad = dataclasses.replace(samples()[1], digest=b"short")
    with pytest.raises(ProtocolError, match="expected exactly 32"):
        wire.encode(bad)


def test_random_bytes_never_crash():
    import random

    rng = random.Random(7)
    valid = wire.encode(samples()[2])
    for _ in range(2000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ProtocolError):
            wire.decode(bytes(data))
