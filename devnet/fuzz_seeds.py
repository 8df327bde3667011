"""Valid inputs of every decoder that devnet/fuzz_targets.py fuzzes, and the words of each format.

Seeds are deterministic, except the 64 signature bytes of signed messages: sr25519 signing
is randomised, so those differ from run to run (a failure is reported with its exact bytes).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from hivemind.utils.serializer import MSGPackSerializer

from node.checkpoint.state import serialize_state
from node.config import NodeConfig, RunSpec, render_run_file
from node.data.corpus import CorpusManifest
from node.outer.optimizer import OuterState
from protocol import messages as m
from protocol import signing, wire
from protocol.compression import CodecSpec, get_codec
from protocol.compression.bitpack import pack_fixed

RUN = bytes(range(32))
NOW = 1_700_000_000.0
STATE_NUMEL = 24
CODEC_NUMEL = 1000  # 3 full chunks of 256 and a partial one of 232
D1, D2, D3 = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32


@functools.cache
def keypair():
    from bittensor.sp_core import Keypair

    return Keypair.create_from_seed(bytes(range(100, 132)))


def messages() -> list[object]:
    """One valid instance of every registered message type, unsigned, with non-empty tuples."""
    hk = keypair().ss58_address
    entry = m.ManifestEntry(hotkey=hk, digest=D1, weight=0.75)
    return [
        m.PeerBinding(run_id=RUN, hotkey=hk, peer_id=b"\x00$" + bytes(36), expires_at=NOW + 60),
        m.ContributionMeta(
            run_id=RUN,
            round=7,
            hotkey=hk,
            peer_id=b"p" * 38,
            digest=D1,
            nbytes=4321,
            codec="sparseloco-ec",
            trained_from=D2,
            head_start=D3,
            first_losses=(5.25, 5.5, 4.75),
        ),
        m.RoundManifest(
            run_id=RUN, round=7, hotkey=hk, base_state_hash=D1, entries=(entry, m.ManifestEntry("5Other", D2)), result_state_hash=D3
        ),
        m.StateAnnouncement(run_id=RUN, round=8, hotkey=hk, peer_id=b"p" * 38, state_hash=D2),
        m.VerificationRecord(
            run_id=RUN,
            round=7,
            hotkey=hk,
            subject="5Subject",
            payload_digest=D1,
            base_state_hash=D2,
            claimed_base_hash=D2,
            head_start=b"",
            codec="topk",
            claimed_losses=(5.0, 4.5),
            beacon=D3,
            assigned_pages=(3, 9),
            control_pages=(1,),
            page_digests=(D1, D2, D3),
            compared=(entry,),
            previous=(),
            evidence=(m.Evidence(record=D1, round=6, work_z=-0.5),),
            metrics=(m.Metric("work_z", 0.25), m.Metric("head_unknown", 0.0)),
            tolerances=(m.Metric("work_z", 1e-3),),
            verdict="pass",
            reason="",
        ),
        m.FetchRequest(run_id=RUN, kind="state", digest=D1),
        m.AuditRequest(kind="index", first_round=3, last_round=9, digest=D1),
    ]


@functools.cache
def signed_seeds() -> tuple[bytes, ...]:
    """Every DHT record kind, signed by `keypair()` for RUN."""
    return tuple(wire.encode(signing.sign(msg, keypair())) for msg in messages() if hasattr(msg, "hotkey") and hasattr(msg, "run_id"))


def wire_seeds(type_name: str | None = None) -> list[bytes]:
    """Valid encodings, signed and unsigned, of `type_name` (of every type when None)."""
    plain = [wire.encode(msg) for msg in messages()]
    every = plain + list(signed_seeds()) + [wire.encode(m.RecordPush(run_id=RUN, record=s)) for s in signed_seeds()]
    return [s for s in every if type_name is None or type_name == wire.decode(s).TYPE_NAME]


CODEC_SPECS = (
    CodecSpec(name="topk", chunk=256, k=8),
    CodecSpec(name="sparseloco", chunk=256, k=12, value_bits=2, scale_group=2),
    CodecSpec(name="sparseloco-ec", chunk=256, k=12, value_bits=1, scale_group=3),
    CodecSpec(name="sparseloco-ec", chunk=64, k=60, value_bits=2, scale_group=1),
    CodecSpec(name="demo-dct", chunk=64, k=4, value_bits=2, scale_group=1),
    CodecSpec(name="dense-fp16", chunk=64, k=1),
)


def codec_seeds(spec: CodecSpec) -> list[bytes]:
    codec = get_codec(spec)
    gen = torch.Generator().manual_seed(5)
    vectors = [torch.randn(CODEC_NUMEL, generator=gen), torch.zeros(CODEC_NUMEL), torch.randn(CODEC_NUMEL, generator=gen) * 1e5]
    sparse = torch.zeros(CODEC_NUMEL)
    sparse[::97] = 1.0
    return [codec.encode(v) for v in (*vectors, sparse)]


def bitpack_seeds() -> list[bytes]:
    """[bits u8][count u16][packed fields]: `unpack_fixed` given everything about a field."""
    seeds = []
    for bits, count in ((1, 13), (2, 9), (4, 7), (8, 5), (12, 6), (12, 5), (16, 3), (5, 11), (32, 2)):
        values = [(i * 2654435761) % (1 << bits) for i in range(count)]
        seeds.append(bytes([bits]) + count.to_bytes(2, "little") + pack_fixed(values, bits))
    return seeds


def state_seeds() -> list[bytes]:
    theta = torch.linspace(-1, 1, STATE_NUMEL)
    return [serialize_state(OuterState(theta=theta, momentum=theta * 0.5), 12), serialize_state(OuterState.fresh(theta), 0)]


def dht_record_seeds() -> list[bytes]:
    return [MSGPackSerializer.dumps(raw) for raw in signed_seeds()]


def config_seeds() -> list[bytes]:
    root = Path(__file__).resolve().parents[1] / "examples"
    return [render_run_file(RunSpec(), NodeConfig()).encode()] + [p.read_bytes() for p in sorted(root.glob("*/run.toml"))]


def corpus_seeds() -> list[bytes]:
    manifest = CorpusManifest.create(
        name="stdlib", tokenizer="ab" * 32, dtype="uint16", page_tokens=4096, num_pages=1200, shard_pages=4096, page_digests_root="cd" * 32
    )
    return [manifest.to_json_bytes()]


MSGPACK_TOKENS = (
    b"\xdd\xff\xff\xff\xff",
    b"\xdc\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdb\x7f\xff\xff\xff",
    b"\xc5\xff\xff",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\xca\x7f\x80\x00\x00",
    b"\xc1",
    b"\xc0",
    b"\xc3",
    b"\xd4\x00\x00",
    b"\xc7\x01\x05x",
    b"\x81\xa1a\x01",
    b"\x91" * 64,
    b"\x91" * 3000,
    b"\xa3\xed\xa0\x80",
    b"\xa2\xc3\x28",
)
TOML_TOKENS = (
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b'"',
    b"'''",
    b'"""',
    b"\n",
    b"nan",
    b"inf",
    b"-inf",
    b"1e999",
    b"-0.0",
    b"99999999999999999999999",
    b"-9223372036854775809",
    b"0x7fffffffffffffff",
    b"true",
    b"1979-05-27T07:32:00Z",
    b"[node]",
    b"[model]",
    b"[codec]",
    b"[plan.inner]",
    b"a.b.c = 1",
    b"\\u0000",
    b"\\U0010ffff",
    b"\\ud800",
    b"\\U0001F600",
    b"\xf0\x9f\x98\x80",
    b"\x7f",
    b"x = " + b"[" * 3000,
    b"x = " + b"{a=" * 1500,
    b"# \x00",
)
HTTP_TOKENS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PRI * HTTP/2.0\r\n",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b"\r\n\r\n",
    b"\r\n",
    b"//[",
    b"http://[::1",
    b"http://h:99999/",
    b"%",
    b"%00",
    b"?a=b",
    b"#",
    b"/metrics",
    b"/status",
    b"/healthz",
    b"/index.html",
    b"Content-Length: 99999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: keep-alive\r\n",
    b" HTTP/9.9\r\n",
    b" HTTP/1\r\n",
    b"X: " + b"a" * 70000 + b"\r\n",
    b"H: v\r\n" * 120,
    b"\xff\xfe",
)
ADDRESS_TOKENS = (b":", b"[", b"]", b"::1", b"\xc2\xb2", b"\xd9\xa1", b"65536", b"-1", b"+1", b" ", b"0" * 5000, b"_", b"%eth0", b"\x00")
