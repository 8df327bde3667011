"""The hostile peer's table of message kinds (devnet/hostile.py): what each one sends, and where.

A kind makes one or more shots from what the peer knows (`Aim`) and the seeded
random source: a `Stream` to one of the node's stream handlers, a `Store` into
the DHT, or an `Rpc` to one of hivemind's DHT handlers. Records are signed by
the peer's own registered hotkey unless the kind is about a bad signature, so
they pass every check a Sybil's fail and reach the rules behind them: the store
caps, the push inbox's round window and shares, the key and TTL rules.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hivemind.dht.routing import DHTID
from hivemind.proto import dht_pb2
from hivemind.utils.serializer import MSGPackSerializer

from node.audit.serve import STREAM as AUDIT_STREAM
from node.swarm import push, records, transfer
from protocol import signing, wire
from protocol.messages import (
    AuditRequest,
    ContributionMeta,
    FetchRequest,
    ManifestEntry,
    Metric,
    PeerBinding,
    RecordPush,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.wire import MAX_INT

HOLD_SECONDS = (2.0, 13.0)  # streams held unread: some past the node's 10 s request timeout
BURST = 8  # streams a burst opens at once, none of them read
DHT_RPCS = ("DHTProtocol.rpc_ping", "DHTProtocol.rpc_store", "DHTProtocol.rpc_find")
REPLAYS_KEPT = 256  # signed records remembered for replays
STORE_MANY = 64  # records in one raw DHT store request


@dataclass(frozen=True)
class Stream:
    """Open stream `name`, write `data`; then read the reply (`read`), or hold the stream `hold` seconds unread."""

    name: str
    data: bytes
    read: bool = True
    hold: float = 0.0


@dataclass(frozen=True)
class Store:
    key: str
    subkey: object
    value: object  # hivemind serializes it: the wire bytes, or anything else a hostile peer cares to store
    expires_at: float


@dataclass(frozen=True)
class Rpc:
    name: str
    data: bytes


Shot = Stream | Store | Rpc


@dataclass
class Aim:
    """What the kinds may use: the run, the peer's identity, the round now, what honest peers announced."""

    run_id: bytes
    codec: str
    keypair: object
    peer_id: bytes
    round: int
    honest: list[str]  # the other registered hotkeys
    announced: dict[tuple[str, bytes], bytes] = field(default_factory=dict)  # (kind, peer id) -> latest digest
    replays: list[bytes] = field(default_factory=list)  # signed records sent before

    @property
    def hotkey(self) -> str:
        return self.keypair.ss58_address  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[[Aim, random.Random], list[Shot]]


def framed(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "little") + raw


def rounds_of(aim: Aim, rng: random.Random, when: str) -> int:
    """A round number: this one, far ahead, long past, or anywhere in the window a node accepts (reordered)."""
    r = aim.round
    return {
        "current": r,
        "future": r + rng.choice([rng.randint(3, 10**9), MAX_INT - r]),  # a fresh round each time: a fresh store slot
        "past": max(0, r - rng.choice([9, 64, 10**6])),
        "reordered": max(0, r + rng.randint(-push.ROUNDS_BEHIND, push.ROUNDS_AHEAD)),
    }[when]


def record(aim: Aim, rng: random.Random, what: str, r: int) -> object:
    """A signed record of kind `what` for round `r` by the peer's own hotkey, with random contents."""
    me, peer, digest = aim.hotkey, aim.peer_id, rng.randbytes(32)
    subjects = [*aim.honest, me, rng.randbytes(20).hex()]
    msg: object
    if what == "contrib":
        losses = tuple(rng.uniform(0, 20) for _ in range(rng.randint(0, 32)))  # 64 rows do not fit in 768 bytes
        msg = ContributionMeta(aim.run_id, r, me, peer, digest, rng.randint(0, 1 << 40), aim.codec, rng.randbytes(32), b"", losses)
    elif what == "manifest":
        entries = tuple(ManifestEntry(h, rng.randbytes(32), round(rng.uniform(0.5, 1.0), 4)) for h in subjects[: rng.randint(0, 4)])
        msg = RoundManifest(aim.run_id, r, me, rng.randbytes(32), entries, rng.randbytes(32))
    elif what == "state":
        msg = StateAnnouncement(aim.run_id, r, me, peer, digest)
    elif what == "verdict":
        msg = VerificationRecord(
            aim.run_id, r, me, rng.choice(subjects), digest, rng.randbytes(32), rng.randbytes(32), b"", aim.codec, (),
            rng.randbytes(32), (1,), (2,), (rng.randbytes(32), rng.randbytes(32)), (), (), (),
            (Metric("work_z", rng.uniform(-9, 9)),), (), rng.choice(["pass", "fail"]), "hostile",
        )  # fmt: skip
    else:
        msg = PeerBinding(aim.run_id, me, rng.choice([peer, rng.randbytes(38)]), time.time() + rng.uniform(-60, 900))
    signed = signing.sign(msg, aim.keypair)  # type: ignore[arg-type]
    aim.replays[: max(0, len(aim.replays) - REPLAYS_KEPT + 1)] = []
    aim.replays.append(wire.encode(signed))
    return signed


def spoiled(aim: Aim, rng: random.Random, how: str) -> bytes:
    """Record bytes that are wrong in one way: a replay, a bad signature, another run, cut short, noise."""
    msg = record(aim, rng, rng.choice(["contrib", "state", "verdict", "manifest"]), aim.round)
    raw = wire.encode(msg)
    if how == "replay":
        return rng.choice(aim.replays)
    if how == "bad-signature":
        sig = bytearray(msg.signature)  # type: ignore[attr-defined]
        sig[rng.randrange(len(sig))] ^= 1 << rng.randrange(8)
        return wire.encode(replace(msg, signature=bytes(sig)))  # type: ignore[type-var]
    if how == "impersonate":  # an honest node's hotkey on a record we signed
        return wire.encode(replace(msg, hotkey=rng.choice(aim.honest or [aim.hotkey])))  # type: ignore[type-var]
    if how == "wrong-run":
        return wire.encode(signing.sign(replace(msg, run_id=rng.randbytes(32)), aim.keypair))  # type: ignore[type-var]
    if how == "truncated":
        return raw[: rng.randrange(len(raw))]
    return rng.randbytes(rng.randint(0, 1024))


def pushed(aim: Aim, raw: bytes) -> Stream:
    return Stream(push.stream_name(aim.run_id), framed(wire.encode(RecordPush(aim.run_id, raw))))


def stored(msg_or_raw: object, aim: Aim, expires_in: float = 600.0) -> Store:
    """A DHT store of a record under the key its content names (spoiled bytes: under this round's contrib key)."""
    if isinstance(msg_or_raw, bytes):
        key = records.round_key(aim.run_id, "contrib", aim.round)
        return Store(key, aim.hotkey, msg_or_raw, time.time() + expires_in)
    return Store(records.key_for(msg_or_raw), aim.hotkey, wire.encode(msg_or_raw), time.time() + expires_in)


def requests(aim: Aim, rng: random.Random) -> dict[str, tuple[str, int, bytes, bytes]]:
    """handler -> (stream, request bound, a valid request for something big, a valid request of another type)."""
    state = next((d for (k, _), d in aim.announced.items() if k == "state"), rng.randbytes(32))
    fetch = wire.encode(FetchRequest(aim.run_id, "state", state))
    audit = wire.encode(AuditRequest(rng.choice(["spec", "index", "state"]), 0, rng.randint(0, 4095), state))
    record_push = wire.encode(RecordPush(aim.run_id, wire.encode(record(aim, rng, "state", aim.round))))
    return {
        "fetch": (transfer.stream_name(aim.run_id), wire.max_bytes_of(FetchRequest), fetch, audit),
        "audit": (AUDIT_STREAM, wire.max_bytes_of(AuditRequest), audit, fetch),
        "push": (push.stream_name(aim.run_id), wire.max_bytes_of(RecordPush), record_push, fetch),
    }


def stream_kind(handler: str, how: str) -> Kind:
    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        name, limit, valid, other = requests(aim, rng)[handler]
        hold = rng.uniform(*HOLD_SECONDS)
        if how == "garbage":
            return [Stream(name, framed(rng.randbytes(rng.randint(0, limit))))]
        if how == "truncated":
            return [Stream(name, framed(valid)[: rng.randrange(len(valid) + 4)], read=False)]
        if how == "oversized":
            return [Stream(name, rng.randint(limit + 1, (1 << 32) - 1).to_bytes(4, "little") + rng.randbytes(64))]
        if how == "wrong-type":
            return [Stream(name, framed(other))]
        if how == "stall":  # open, send part of the length prefix at most, never finish
            return [Stream(name, rng.randbytes(rng.randint(0, 3)), read=False, hold=hold)]
        if how == "no-read":
            return [Stream(name, framed(valid), read=False, hold=hold)]
        if how == "burst":
            return [Stream(name, framed(valid), read=False, hold=hold) for _ in range(BURST)]
        return [Stream(name, framed(valid))]

    return Kind(f"{handler}-{how}", make)


def record_kind(delivery: str, what: str, when: str) -> Kind:
    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        msg = record(aim, rng, what, rounds_of(aim, rng, when))
        return [pushed(aim, wire.encode(msg)) if delivery == "push" else stored(msg, aim)]

    return Kind(f"{delivery}-{what}-{when}", make)


def spoiled_kind(delivery: str, how: str) -> Kind:
    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        raw = spoiled(aim, rng, how)
        return [pushed(aim, raw) if delivery == "push" else stored(raw, aim)]

    return Kind(f"{delivery}-{how}", make)


def dht_only(how: str) -> Kind:
    """Stores a DHT node refuses whatever is in them: misplaced, pinned too long, not bytes."""

    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        msg = record(aim, rng, "contrib", aim.round)
        good = stored(msg, aim)
        if how == "misplaced":
            return [
                replace(good, key=records.round_key(aim.run_id, "manifest", aim.round + 1)),
                replace(good, subkey=rng.choice(aim.honest or ["x"])),
            ]
        if how == "ttl":
            return [replace(good, expires_at=time.time() + rng.uniform(3700, 1e7))]
        return [replace(good, value=rng.choice([{"a": 1}, [1, 2, 3], 7, "text", None]))]

    return Kind(f"dht-{how}", make)


def store_request(aim: Aim, rng: random.Random, many: bool) -> bytes:
    """A raw DHT StoreRequest, past our own DHT process (whose pipe dies on values over ~32 KB): one value
    over the record bound, or STORE_MANY signed records of rounds far ahead, in the cache or the storage."""
    shots = [stored(record(aim, rng, "contrib", rounds_of(aim, rng, "future")), aim) for _ in range(STORE_MANY if many else 1)]
    values = [MSGPackSerializer.dumps(s.value) for s in shots] if many else [rng.randbytes(rng.randint(33_000, 200_000))]
    return dht_pb2.StoreRequest(
        keys=[DHTID.generate(source=s.key).to_bytes() for s in shots],
        subkeys=[MSGPackSerializer.dumps(s.subkey) for s in shots],
        values=values,
        expiration_time=[s.expires_at for s in shots],
        in_cache=[rng.random() < 0.5 for _ in shots],
    ).SerializeToString()


def store_kind(many: bool) -> Kind:
    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        return [Rpc(DHT_RPCS[1], store_request(aim, rng, many))]

    return Kind("rpc-store-" + ("many-future" if many else "oversized"), make)


def rpc_kind(name: str) -> Kind:
    def make(aim: Aim, rng: random.Random) -> list[Shot]:
        return [Rpc(name, rng.randbytes(rng.randint(0, 4096)))]

    return Kind(f"rpc-{name.split('.')[-1]}-garbage", make)


def kinds() -> list[Kind]:
    """Every kind, in a fixed order (the attack shuffles it with its seed)."""
    table = [stream_kind(h, how) for h in ("fetch", "audit", "push") for how in STREAM_HOWS]
    for delivery in ("push", "dht"):
        table += [record_kind(delivery, what, when) for what in ("contrib", "manifest", "state", "verdict") for when in WHENS]
        table += [record_kind(delivery, "binding", "current")]
        table += [spoiled_kind(delivery, how) for how in SPOILS]
    table += [dht_only(how) for how in ("misplaced", "ttl", "not-bytes")]
    table += [rpc_kind(name) for name in DHT_RPCS] + [store_kind(False), store_kind(True)]
    return table


STREAM_HOWS = ("garbage", "truncated", "oversized", "wrong-type", "stall", "no-read", "burst", "valid")
WHENS = ("current", "future", "past", "reordered")
SPOILS = ("replay", "bad-signature", "impersonate", "wrong-run", "truncated", "garbage")
