"""Hostile bytes into every decoder (the table of devnet/fuzz_targets.py): each returns a valid
object or raises its documented error, never anything else, and refuses huge length fields
before allocating. Then one regression test per defect the fuzzer found.

Hypothesis runs derandomized with no example database, so every run draws the same inputs;
`python -m devnet.fuzz_decoders` runs the same targets for a million inputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import time
import tracemalloc
import typing

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devnet.fuzz_decoders import HUGE
from devnet.fuzz_seeds import CODEC_SPECS, codec_seeds, messages, state_seeds
from devnet.fuzz_targets import handle_http, targets
from node.checkpoint.state import StateError, parse_state
from node.config import ConfigError, NodeConfig, RunSpec, load_run_file, parse_run_file, render_run_file
from node.data.corpus import MANIFEST_FILE, CorpusIntegrityError, CorpusManifest, load_corpus
from node.status.address import parse_address
from protocol import wire
from protocol.compression import CompressionError, get_codec
from protocol.wire import ProtocolError

TARGETS = targets()
FUZZ = settings(derandomize=True, database=None, max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def hostile(draw, seeds: list[bytes], tokens: tuple[bytes, ...]) -> bytes:
    """A valid seed with a few of the fuzz driver's mutations: flips, cuts, insertions, huge integers, format words."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("flip", "cut", "insert", "inflate", "word")))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            data = data[:at] + data[at + draw(st.integers(1, 32)) :]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "inflate":
            width = draw(st.sampled_from((1, 2, 4, 8)))
            data[at : at + width] = (draw(st.sampled_from(HUGE)) % (1 << 8 * width)).to_bytes(width, "little")
        elif op == "word" and tokens:
            data[at:at] = draw(st.sampled_from(tokens))
    return bytes(data)


def honours_contract(name: str, data: bytes) -> None:
    target = TARGETS[name]
    try:
        target.call(data)  # raises AssertionError itself when what it decoded is wrong
    except target.allowed:
        pass


@pytest.mark.parametrize("name", sorted(TARGETS))
@FUZZ
@given(data=st.data())
def test_mutated_seeds_decode_or_raise_the_documented_error(name, data):
    target = TARGETS[name]
    honours_contract(name, data.draw(hostile(target.seeds(), target.tokens)))


@pytest.mark.parametrize("name", sorted(TARGETS))
@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_decode_or_raise_the_documented_error(name, raw):
    honours_contract(name, raw)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_decodes(name):
    """The seeds are valid inputs, so the mutations start from the paths that accept."""
    for seed in TARGETS[name].seeds():
        TARGETS[name].call(seed)


def refused_within_a_mebibyte(error: type[Exception], decode, *args) -> None:
    """`decode(*args)` raises `error`, having allocated (numpy and Python memory) under 1 MiB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(error):
            decode(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("spec", CODEC_SPECS, ids=lambda s: s.name)
def test_a_codec_refuses_two_to_the_forty_elements_before_allocating(spec):
    refused_within_a_mebibyte(CompressionError, get_codec(spec).decode, codec_seeds(spec)[0], 1 << 40)


@pytest.mark.parametrize("count", [0xFFFFFFFF, 1 << 31])
@pytest.mark.parametrize("header", [b"\xdd", b"\xc6", b"\xdb"], ids=["array32", "bin32", "str32"])
def test_wire_refuses_a_huge_array_or_bin_length_before_allocating(header, count):
    data = b"\x93\x01\xb1contribution_meta" + header + struct.pack(">I", count) + b"\x00" * 16
    refused_within_a_mebibyte(ProtocolError, wire.decode, data)


def test_a_state_header_claiming_two_to_the_forty_floats_is_refused_before_allocating():
    header = json.dumps({"theta": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4 << 40]}}).encode()
    refused_within_a_mebibyte(StateError, parse_state, struct.pack("<Q", len(header)) + header + b"\x00" * 64, 24)
    assert parse_state(state_seeds()[0], 24).theta.shape == (24,)


# ----------------------------------------------------------------------------- found by the fuzzer


@pytest.mark.parametrize("nest", ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b=" * 3000 + "1" + "}" * 3000])
def test_toml_nested_thousands_deep_is_a_config_error_not_a_recursion_error(nest):
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_run_file(nest)


def test_a_run_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_run_file(path)


@pytest.mark.parametrize(
    "text",
    [
        "[outer]\nlr = nan\n",
        "[schedule]\nround_seconds = inf\n",
        "[model]\nseed = 99999999999999999999\n",
        "[chain]\nnetuid = -9223372036854775809\n",
    ],
)
def test_non_finite_floats_and_ints_past_64_bits_are_config_errors(text):
    with pytest.raises(ConfigError, match=r"not nan or inf|64 bits at most"):
        parse_run_file(text)


@FUZZ
@given(name=st.text(min_size=1, max_size=20), path=st.text(max_size=20))
def test_a_rendered_run_file_parses_back_whatever_its_strings_hold(name, path):
    """It did not for characters past U+FFFF (JSON's surrogate-pair escapes are not TOML) nor for DEL."""
    spec = dataclasses.replace(RunSpec(), name=name, data=dataclasses.replace(RunSpec().data, source="files", path=path or "x"))
    assert parse_run_file(render_run_file(spec, NodeConfig())) == (spec, NodeConfig())
    assert parse_run_file(render_run_file(dataclasses.replace(spec, name="x\U0001f600\x7fy"), NodeConfig()))[0].name == "x\U0001f600\x7fy"


def test_a_corpus_manifest_nested_thousands_deep_is_an_integrity_error():
    with pytest.raises(CorpusIntegrityError, match="not valid JSON"):
        CorpusManifest.from_json_bytes(b"[" * 100_000)


def test_a_manifest_claiming_two_to_the_fifty_pages_is_refused_without_listing_its_shards(tmp_path):
    manifest = CorpusManifest.create(
        name="x", tokenizer="ab" * 32, dtype="uint16", page_tokens=2, num_pages=1 << 50, shard_pages=1, page_digests_root="cd" * 32
    )
    folder = tmp_path / manifest.digest
    folder.mkdir()
    (folder / MANIFEST_FILE).write_bytes(manifest.to_json_bytes())
    (folder / "digests.bin").write_bytes(b"\x00" * 64)
    started = time.perf_counter()
    with pytest.raises(CorpusIntegrityError, match=r"digests\.bin has 64 bytes"):
        load_corpus(tmp_path, manifest.digest)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("text", ["h:\u00b2", "h:\u0661\u0662", "h:" + "1" * 5000, "h:000009200"])
def test_a_port_is_one_to_five_ascii_digits(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def test_a_request_target_that_urlsplit_refuses_gets_a_400_not_a_dropped_connection():
    assert handle_http(b"GET http://[::1 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 400")  # an absolute URI, its IPv6 host unclosed
    assert handle_http(b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200")


def _respelled(msg, **packb) -> bytes:
    return msgpack.packb([wire.WIRE_VERSION, msg.TYPE_NAME, wire._to_plain(msg)], use_bin_type=True, **packb)


def test_wire_accepts_only_the_canonical_spelling_of_a_message():
    """msgpack spells a value several ways; a second spelling of a signed message is a second sha256
    (the DHT's store cap counts by it), and a float32 spelling fits where the canonical one does not."""
    meta = messages()[1]
    canonical = wire.encode(meta)
    assert _respelled(meta) == canonical and wire.decode(canonical) == meta
    binding = messages()[0]
    expires = binding.expires_at
    respellings = [
        _respelled(meta, use_single_float=True),  # first_losses as binary32
        canonical.replace(b"\xadsparseloco-ec", b"\xd9\x0dsparseloco-ec"),  # the codec name as str8, not fixstr
        wire.encode(binding).replace(struct.pack(">Bd", 0xCB, expires), b"\xce" + struct.pack(">I", int(expires))),  # a float as int
    ]
    for respelled in respellings:
        assert respelled not in (canonical, wire.encode(binding))
        with pytest.raises(ProtocolError, match="canonical"):
            wire.decode(respelled)


LARGEST = {bytes: b"\xff" * 32, int: wire.MAX_INT, float: math.pi}  # a float64 takes 9 bytes whatever its value
VALID = {"verdict": "pass", "first_round": 0, "last_round": 9, "weight": 1.0}  # fields whose values are checked


def _largest(cls: type, serial: int = 0):
    """`cls` with every field at its bound; nested entries get distinct 64-character hotkeys."""
    hints, values = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        hint, size = hints[f.name], f.metadata.get("exact_len") or f.metadata.get("max_len") or 0
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            values[f.name] = tuple(_largest(item, i) if dataclasses.is_dataclass(item) else LARGEST[item] for i in range(size))
        elif f.name == "hotkey":
            values[f.name] = f"{serial:0{size}d}"
        else:
            values[f.name] = {bytes: b"\xff" * size, str: "x" * size}.get(hint, LARGEST.get(hint))
    values |= {k: v for k, v in VALID.items() if k in values}
    if "kind" in values:
        values["kind"] = "payload" if "run_id" in values else "record"
    return cls(**values)


@pytest.mark.parametrize("cls", sorted(wire._REGISTRY.values(), key=wire.type_name_of), ids=wire.type_name_of)
def test_a_message_with_every_field_at_its_bound_encodes(cls):
    """A contribution with 64 first losses and a head start came to 986 bytes, over the 768 its kind allowed:
    a node training 64 rows a step could not announce its work."""
    msg = _largest(cls)
    assert wire.decode(wire.encode(msg)) == msg
