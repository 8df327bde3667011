"""A hostile peer that is registered, staked and bound: what a bought identity can throw at honest nodes.

Unlike a Sybil (devnet/sybil.py) its streams are admitted, its records come
from a registered signer, and its pushes are read. It cycles over a table of
message kinds (devnet/hostile_kinds.py), one per way of being wrong at each p2p
handler a node registers (the fetch, push and audit streams, the DHT's own RPCs)
and at each DHT record type: malformed, truncated, oversized, replayed,
reordered and future-round messages, streams it opens and never reads, and
bursts of them at once. The seed fixes the order of kinds and every random byte,
so a run that finds a defect can be repeated.

    python -m devnet.hostile --config run.toml --messages N --seed S --report out.json

The run file's [node] table names its wallet (registered and staked by whoever
set up the run) and the bootstrap peers; it commits its peer id on chain as a
node does, waits for `--targets` bound peers, then fires. The report counts the
messages per kind and the rate, and after the last message it fetches each
target's latest payload as an honest peer would: a node that stopped serving
shows up there.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hivemind
from hivemind.p2p import P2P, PeerID

from devnet.hostile_kinds import Aim, Kind, Rpc, Shot, Store, Stream, kinds
from node.chain import ChainView
from node.config import RunSpec, load_run_file
from node.fsutil import atomic_write
from node.swarm import records, transfer
from node.swarm.binding import ChainBindings, signed_binding
from protocol import wire
from protocol.messages import ContributionMeta, StateAnnouncement
from protocol.schedule import RoundSchedule

log = logging.getLogger(__name__)

CONCURRENCY = 64  # quick messages in flight at once
HELD = 2048  # streams held open unread at once, at most
STORES = 8  # DHT stores in flight at once: more overflow the pipe to our own DHT process (EAGAIN kills it)
SHOT_TIMEOUT = 30.0  # no message waits longer than this for its answer
MAX_READ = 64 << 20  # a reply read in full is at most this big
WATCH_SECONDS = 3.0  # how often the round and the honest announcements are re-read


@dataclass
class HostileReport:
    seed: int
    messages: int = 0
    seconds: float = 0.0
    messages_per_second: float = 0.0
    hotkey: str = ""
    targets: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # messages per kind
    answered: dict[str, int] = field(default_factory=dict)  # an OK reply, a DHT ack, an RPC answer
    failed: dict[str, int] = field(default_factory=dict)  # dropped, refused or timed out: what hostile input should get
    honest_fetches_after: int = 0  # targets that served their latest payload, intact, after the last message
    rounds: tuple[int, int] = (0, 0)  # the rounds the attack began and ended in


class Hostile:
    """One bound identity with a DHT peer and a libp2p daemon, and the counts of what it sent."""

    def __init__(self, spec: RunSpec, chain: ChainView, schedule: RoundSchedule, keypair, dht: hivemind.DHT, p2p: P2P, seed: int):
        self.spec, self.chain, self.schedule = spec, chain, schedule
        self.dht, self.p2p = dht, p2p
        self.report = HostileReport(seed=seed, hotkey=keypair.ss58_address)
        honest = sorted(n.hotkey for n in chain.neurons() if n.hotkey != keypair.ss58_address)
        self.aim = Aim(spec.run_id, spec.codec.name, keypair, dht.peer_id.to_bytes(), self.round(), honest)
        self.targets: list[PeerID] = []
        self.payloads: dict[bytes, list[bytes]] = {}  # peer id -> the payload digests it announced, oldest first
        self.answered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def round(self) -> int:
        return max(0, self.schedule.round_at(time.time()))

    async def bind(self, targets: int, timeout: float) -> None:
        """Commit our peer id on chain, then wait until `targets` other peers are bound."""
        me = self.aim.peer_id
        await asyncio.to_thread(self.chain.set_commitment, self.aim.keypair, signed_binding(self.spec.run_id, self.aim.keypair, me))
        bindings = ChainBindings(self.spec.run_id, self.chain)
        deadline = time.time() + timeout
        while len(peers := [p for p in await bindings.bound_peers() if p != me]) < targets:
            if time.time() > deadline:
                raise TimeoutError(f"only {len(peers)} of {targets} peers bound after {timeout:.0f} s")
            await asyncio.sleep(1.0)
        self.targets = [PeerID(p) for p in peers]
        self.report.targets = [p.to_base58() for p in self.targets]

    async def watch(self) -> None:
        """Keep the round and the digests honest peers announced (what valid requests ask for) fresh."""
        while True:
            self.aim.round = self.round()
            for r in (self.aim.round, self.aim.round - 1):
                found = await self.announced(r)
                self.aim.announced.update(found)
                for (kind, peer), digest in found.items():
                    if kind == "payload" and digest not in self.payloads.setdefault(peer, []):
                        self.payloads[peer].append(digest)
            await asyncio.sleep(WATCH_SECONDS)

    async def announced(self, r: int) -> dict[tuple[str, bytes], bytes]:
        """(kind, peer id) -> digest of the payloads and states announced for round `r`."""
        found: dict[tuple[str, bytes], bytes] = {}
        for key in ("contrib", "state"):
            got = await self.dht.get(records.round_key(self.spec.run_id, key, r), latest=True, return_future=True)
            for item in got.value.values() if got is not None and isinstance(got.value, dict) else ():
                try:
                    msg = wire.decode(item.value)
                except wire.ProtocolError:
                    continue
                if isinstance(msg, ContributionMeta):
                    found["payload", msg.peer_id] = msg.digest
                elif isinstance(msg, StateAnnouncement):
                    found["state", msg.peer_id] = msg.state_hash
        return found

    async def attack(self, messages: int, rng: random.Random) -> None:
        """Fire `messages` messages, cycling over the kinds in an order the seed shuffles, over the targets in turn."""
        quick, held, stores = asyncio.Semaphore(CONCURRENCY), asyncio.Semaphore(HELD), asyncio.Semaphore(STORES)
        table: list[Kind] = kinds()
        order: list[Kind] = []
        running: set[asyncio.Task] = set()
        started, n = time.time(), 0
        self.report.rounds = (self.round(), self.round())
        while self.report.messages < messages:
            if not order:
                order = rng.sample(table, len(table))
            kind = order.pop()
            target = self.targets[n % len(self.targets)]
            n += 1
            for shot in kind.make(self.aim, rng):
                gate = held if isinstance(shot, Stream) and shot.hold else stores if isinstance(shot, Store) else quick
                await gate.acquire()
                task = asyncio.create_task(self.fire(kind.name, target, shot, gate))
                running.add(task)
                task.add_done_callback(running.discard)
                self.report.sent[kind.name] = self.report.sent.get(kind.name, 0) + 1
                self.report.messages += 1
        await asyncio.gather(*running)
        self.report.seconds = round(time.time() - started, 1)
        self.report.messages_per_second = round(self.report.messages / max(self.report.seconds, 1e-9), 1)
        self.report.rounds = (self.report.rounds[0], self.round())
        self.report.answered, self.report.failed = dict(self.answered), dict(self.failed)

    async def fire(self, kind: str, target: PeerID, shot: Shot, gate: asyncio.Semaphore) -> None:
        try:
            timeout = SHOT_TIMEOUT + (shot.hold if isinstance(shot, Stream) else 0.0)
            ok = await asyncio.wait_for(self.send(target, shot), timeout)
        except Exception as e:  # refused, reset, timed out: hostile input is meant to fail
            log.debug("%s to %s: %r", kind, target, e)
            ok = False
        finally:
            gate.release()
        (self.answered if ok else self.failed)[kind] += 1

    async def send(self, target: PeerID, shot: Shot) -> bool:
        """Deliver one message; whether the other side answered as to a valid one."""
        if isinstance(shot, Store):
            return bool(await self.dht.store(shot.key, shot.value, shot.expires_at, subkey=shot.subkey, return_future=True))
        if isinstance(shot, Rpc):
            await self.p2p._client.call_unary_handler(target, shot.name, shot.data)  # hivemind has no public raw call
            return True
        _info, reader, writer = await self.p2p.call_binary_stream_handler(target, shot.name)
        try:
            writer.write(shot.data)
            await writer.drain()
            if shot.hold or not shot.read:
                await asyncio.sleep(shot.hold)
                return False
            header = await reader.readexactly(9)
            size = int.from_bytes(header[1:], "little")
            if header[0] == transfer.STATUS_OK and size <= MAX_READ:
                await reader.readexactly(size)
            return header[0] == transfer.STATUS_OK
        finally:
            writer.close()

    async def fetch_after(self) -> int:
        """How many targets serve their latest announced payload, hashing to its digest, as to an honest peer."""
        served = 0
        for target in self.targets:
            for digest in reversed(self.payloads.get(target.to_bytes(), [])[-3:]):  # the newest may not be revealed yet
                try:
                    data = await transfer.fetch(self.p2p, target, self.spec.run_id, "payload", digest, MAX_READ, timeout=30.0)
                except (transfer.TransferError, wire.ProtocolError) as e:
                    log.info("honest fetch from %s: %s", target, e)
                    continue
                served += hashlib.sha256(data).digest() == digest
                break
        return served


async def run_hostile(spec: RunSpec, config_path: Path, messages: int, seed: int, targets: int, report_path: Path) -> HostileReport:
    from node.chain.clock import run_schedule
    from node.cli import _wallet_root, open_chain
    from node.keys import load_hotkey

    _, config = load_run_file(config_path)
    chain = open_chain(spec)
    keypair = load_hotkey(config.wallet, config.hotkey, _wallet_root(config))
    schedule = run_schedule(spec, chain)
    dht = await asyncio.to_thread(
        hivemind.DHT, initial_peers=list(config.bootstrap), host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True
    )
    hostile = Hostile(spec, chain, schedule, keypair, dht, await dht.replicate_p2p(), seed)
    try:
        await hostile.bind(targets, timeout=180.0)
        watch = asyncio.create_task(hostile.watch())
        await hostile.attack(messages, random.Random(seed))
        watch.cancel()
        hostile.report.honest_fetches_after = await hostile.fetch_after()
    finally:
        atomic_write(report_path, json.dumps(asdict(hostile.report), indent=2, sort_keys=True).encode())
        await asyncio.to_thread(dht.shutdown)
    return hostile.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a run.toml whose [node] names the wallet and the bootstrap peers")
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", type=int, default=1, help="wait until this many other peers are bound on chain")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec, _ = load_run_file(Path(args.config))
    report = asyncio.run(run_hostile(spec, Path(args.config), args.messages, args.seed, args.targets, Path(args.report)))
    print(f"hostile: {report.messages} messages of {len(report.sent)} kinds in {report.seconds} s ({report.messages_per_second}/s)")


if __name__ == "__main__":
    main()
