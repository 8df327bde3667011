"""The decoders that `devnet.fuzz_decoders` and tests/unit/test_fuzz_decoders.py feed hostile bytes.

Every function of the product that turns bytes or text from a peer, a file or a user into
objects is one `Target`: its valid seed inputs (devnet/fuzz_seeds.py), a `call` that decodes
one input and checks what came out (round trips included), and the exceptions its contract
allows. Anything else it raises, a hang, or an allocation far past its input is a defect.
"""

from __future__ import annotations

import functools
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from hivemind.dht.routing import DHTID
from hivemind.dht.validation import DHTRecord
from hivemind.utils.serializer import MSGPackSerializer

from devnet.fuzz_seeds import (
    ADDRESS_TOKENS,
    CODEC_NUMEL,
    CODEC_SPECS,
    HTTP_TOKENS,
    MSGPACK_TOKENS,
    NOW,
    RUN,
    STATE_NUMEL,
    TOML_TOKENS,
    bitpack_seeds,
    codec_seeds,
    config_seeds,
    corpus_seeds,
    dht_record_seeds,
    keypair,
    signed_seeds,
    state_seeds,
    wire_seeds,
)
from node.audit.store import AuditError, AuditStore
from node.checkpoint.state import StateError, parse_state, serialize_state
from node.config import ConfigError, parse_run_file, render_run_file
from node.data.corpus import CorpusError, CorpusManifest
from node.status import server as status_server
from node.status.address import parse_address
from node.swarm import records
from node.swarm.binding import parse_commitment
from protocol import wire
from protocol.compression import CodecSpec, CompressionError, get_codec
from protocol.compression.bitpack import pack_fixed, unpack_fixed
from protocol.wire import ProtocolError


@dataclass(frozen=True)
class Target:
    """One decoder under test: `call(data)` returns normally or raises one of `allowed`."""

    name: str
    seeds: Callable[[], list[bytes]]  # valid inputs, called once
    call: Callable[[bytes], object]  # decodes one input; raises AssertionError if what came out is wrong
    allowed: tuple[type[BaseException], ...]
    tokens: tuple[bytes, ...] = ()  # dictionary words the mutator splices in (format keywords, huge lengths)
    msgpack: bool = False  # the input is msgpack: mutate its decoded tree too


def decode_wire(expected: type | None) -> Callable[[bytes], object]:
    def call(data: bytes) -> object:
        msg = wire.decode(data, expected)
        assert expected is None or type(msg) is expected
        try:
            again = wire.encode(msg)
        except ProtocolError as e:
            raise AssertionError(f"decoded, but a node cannot send it on: {e}") from e
        assert again == data, "decoded from a spelling that encode never writes: a second encoding of one message"
        return msg

    return call


def decode_codec(spec: CodecSpec) -> Callable[[bytes], object]:
    codec = get_codec(spec)

    def call(data: bytes) -> object:
        out = codec.decode(data, CODEC_NUMEL)
        assert out.dtype == torch.float32 and tuple(out.shape) == (CODEC_NUMEL,)
        assert bool(torch.isfinite(out).all())
        return out

    return call


def decode_bitpack(data: bytes) -> object:
    bits, count, buf = (data[0] if data else 0), int.from_bytes(data[1:3], "little"), data[3:]
    values = unpack_fixed(buf, bits, count)
    assert len(values) == count and (values >= 0).all() and (values < (1 << bits)).all()
    assert pack_fixed(values, bits) == buf[: (count * bits + 7) // 8]
    return values


def decode_state(data: bytes) -> object:
    state = parse_state(data, STATE_NUMEL)
    again = parse_state(serialize_state(state, 0), STATE_NUMEL)
    assert again.state_hash() == state.state_hash()
    return state


def decode_commitment(data: bytes) -> object:
    binding = parse_commitment(RUN, keypair().ss58_address, data, NOW)
    assert binding is None or binding.expires_at > NOW
    return binding


class _Chain:
    """The chain a DHT validator asks: `keypair()` is registered with a validator permit."""

    def neurons(self):
        return [SimpleNamespace(hotkey=keypair().ss58_address, validator_permit=True)]


@functools.cache
def validator() -> records.RunRecordValidator:
    return records.RunRecordValidator(RUN, _Chain(), store_cap=dict.fromkeys(records.STORE_CAP, 1 << 30))


def decode_signed(data: bytes) -> object:
    return validator().decode_signed(data)


def validate_dht_record(data: bytes) -> object:
    """A DHT record whose value is `data`, under the key and subkey of the contribution seed:
    hivemind hands every record it stores or finds to `validate`, which must answer, not raise."""
    contribution = wire.decode(signed_seeds()[1])
    key = DHTID.generate(source=records.key_for(contribution)).to_bytes()
    record = DHTRecord(key=key, subkey=MSGPackSerializer.dumps(contribution.hotkey), value=data, expiration_time=NOW + 60)
    verdict = validator().validate(record)
    assert isinstance(verdict, bool)
    return verdict


def decode_config(data: bytes) -> object:
    """`parse_run_file` on text as a peer's spec reaches an auditor (node/audit/fetch.py); what parses renders back to itself."""
    spec, node = parse_run_file(data.decode("utf-8", "replace"))
    assert parse_run_file(render_run_file(spec, node)) == (spec, node)
    return spec


@functools.cache
def audit_store() -> AuditStore:
    return AuditStore(Path(tempfile.mkdtemp(prefix="fuzz-audit-")))


def decode_audit_spec(data: bytes) -> object:
    """An audit store's spec.toml, as bytes on disk."""
    store = audit_store()
    (store.root / "spec.toml").write_bytes(data)
    return store.spec()


def decode_corpus_manifest(data: bytes) -> object:
    manifest = CorpusManifest.from_json_bytes(data)
    assert CorpusManifest.from_json_bytes(manifest.to_json_bytes()) == manifest
    return manifest


def decode_address(data: bytes) -> object:
    text = data.decode("utf-8", "replace")
    host, port = parse_address(text)
    assert isinstance(port, int) and 0 <= port <= 65535 and isinstance(host, str)
    assert text.rpartition(":")[2].isascii(), "a port spelled in other digits than 0-9"
    return host, port


class _Handler(status_server._Handler):
    """The status server's request handler on a byte string instead of a socket."""

    def setup(self) -> None:
        self.rfile, self.wfile = io.BytesIO(self.request), io.BytesIO()

    def finish(self) -> None:
        """Nothing to flush or close."""


class _Snapshot:
    def health(self, now: float) -> SimpleNamespace:
        return SimpleNamespace(http_status=200, to_dict=lambda: {"status": "ok"})

    def status(self, now: float) -> dict:
        return {"round": 1}


@functools.cache
def _http_server() -> SimpleNamespace:
    from prometheus_client import CollectorRegistry

    board = SimpleNamespace(current=_Snapshot())
    return SimpleNamespace(board=board, clock=lambda: NOW, spent=status_server.RequestTime(), registry=CollectorRegistry())


def handle_http(data: bytes) -> object:
    """One connection's bytes through the status server's handler: it answers with a status line, or says nothing."""
    handler = _Handler(data, ("127.0.0.1", 9), _http_server())
    answer = handler.wfile.getvalue()
    simple = getattr(handler, "request_version", "") == "HTTP/0.9"  # a version-less request line gets its answer bare
    assert answer == b"" or answer.startswith(b"HTTP/1.") or simple, answer[:80]
    return answer


def targets() -> dict[str, Target]:
    """The table of every decoder, by name."""
    table = [
        Target("wire", wire_seeds, decode_wire(None), (ProtocolError,), MSGPACK_TOKENS, msgpack=True),
        *(
            Target(f"wire:{name}", functools.partial(wire_seeds, name), decode_wire(cls), (ProtocolError,), MSGPACK_TOKENS, msgpack=True)
            for name, cls in sorted(wire._REGISTRY.items())
        ),
        Target("records.decode_signed", lambda: list(signed_seeds()), decode_signed, (ProtocolError,), MSGPACK_TOKENS, msgpack=True),
        Target("records.validate", dht_record_seeds, validate_dht_record, (), MSGPACK_TOKENS, msgpack=True),
        Target("binding.parse_commitment", lambda: [signed_seeds()[0]], decode_commitment, (), MSGPACK_TOKENS, msgpack=True),
        *(
            Target(
                f"codec:{s.name}/{s.chunk}/{s.k}/{s.value_bits}/{s.scale_group}",
                functools.partial(codec_seeds, s),
                decode_codec(s),
                (CompressionError,),
            )
            for s in CODEC_SPECS
        ),
        Target("bitpack.unpack_fixed", bitpack_seeds, decode_bitpack, (ValueError,)),
        Target("state.parse_state", state_seeds, decode_state, (StateError,), (b"\xff" * 8, b'"shape":[99999999999]', b'"dtype":"F64"')),
        Target("config.parse_run_file", config_seeds, decode_config, (ConfigError,), TOML_TOKENS),
        Target("audit.spec", config_seeds, decode_audit_spec, (AuditError,), TOML_TOKENS),
        Target("corpus.manifest", corpus_seeds, decode_corpus_manifest, (CorpusError,), (b"[" * 3000, b"1e999", b"-0", b"99" * 40)),
        Target(
            "address.parse_address",
            lambda: [b"127.0.0.1:9200", b"[::1]:0", b"localhost:65535"],
            decode_address,
            (ValueError,),
            ADDRESS_TOKENS,
        ),
        Target(
            "status.http",
            lambda: [b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /healthz HTTP/1.0\r\n\r\n"],
            handle_http,
            (),
            HTTP_TOKENS,
        ),
    ]
    return {t.name: t for t in table}
