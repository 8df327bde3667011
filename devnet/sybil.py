"""Sybils for `gradswarm demo --sybils N`: identities the chain does not know, knocking on every door.

One process hosts all N so that the demo's two cores go to the honest nodes,
but each Sybil is a full DHT peer with its own libp2p identity and its own
(unregistered) sr25519 hotkey: it joins through the bootstraps, stores
correctly signed contributions, manifests naming the Sybils, state
announcements, slanderous verification records and DHT peer bindings every
few seconds, tries to commit a peer binding on chain, and tries to fetch
payloads and states from the honest nodes it finds in the DHT. Its DHT runs
without a record validator, so it keeps and serves whatever it is given.

What got through is written to a JSON report (`SybilReport`); the demo's
summary judges what the honest nodes accepted from their own round reports.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hivemind
from bittensor.sp_core import Keypair
from hivemind.p2p import P2P, PeerID
from hivemind.utils import get_dht_time

from node.chain import ChainError, ChainView
from node.config import RunSpec, load_run_file
from node.fsutil import atomic_write
from node.swarm import push, records, transfer
from node.swarm.binding import signed_binding
from protocol import signing, wire
from protocol.messages import (
    ContributionMeta,
    ManifestEntry,
    Metric,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.schedule import RoundSchedule

log = logging.getLogger(__name__)

FLOOD_SECONDS = 3.0  # one volley of records and fetch attempts per Sybil this often


@dataclass
class SybilReport:
    hotkeys: list[str]
    peer_ids: list[str] = field(default_factory=list)
    stores_attempted: int = 0
    stores_acknowledged: int = 0  # some DHT peer said it stored the record (other Sybils store anything)
    commitments_refused: int = 0
    commitments_accepted: int = 0
    fetches_attempted: int = 0
    fetches_served: int = 0  # honest nodes that handed bytes to a Sybil: should stay 0
    pushes_attempted: int = 0
    pushes_taken: int = 0  # records an honest node's inbox took straight from a Sybil: should stay 0


def _junk(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


@dataclass
class Sybil:
    run_id: bytes
    codec: str
    keypair: Keypair
    dht: hivemind.DHT
    p2p: P2P

    @property
    def hotkey(self) -> str:
        return self.keypair.ss58_address

    def forgeries(self, r: int, sybils: list[str], honest_subjects: list[str]) -> list[object]:
        """Correctly signed records of every kind the DHT holds, all lies."""
        me, peer = self.hotkey, self.dht.peer_id.to_bytes()
        msgs: list[object] = [
            PeerBinding(run_id=self.run_id, hotkey=me, peer_id=peer, expires_at=time.time() + 600),
            ContributionMeta(
                run_id=self.run_id,
                round=r,
                hotkey=me,
                peer_id=peer,
                digest=_junk(me, r),
                nbytes=4096,
                codec=self.codec,
                trained_from=_junk("base", r),
            ),
            RoundManifest(
                run_id=self.run_id,
                round=r,
                hotkey=me,
                base_state_hash=_junk("base", r),
                entries=tuple(ManifestEntry(hotkey=h, digest=_junk(h, r)) for h in sybils),
                result_state_hash=_junk("result", r),
            ),
            StateAnnouncement(run_id=self.run_id, round=r + 1, hotkey=me, peer_id=peer, state_hash=_junk("result", r)),
        ]
        msgs += [
            VerificationRecord(
                run_id=self.run_id,
                round=max(0, r - 1),
                hotkey=me,
                subject=subject,
                payload_digest=_junk(subject, r),
                base_state_hash=_junk("base", r),
                claimed_base_hash=_junk("base", r),
                head_start=b"",
                codec=self.codec,
                claimed_losses=(),
                beacon=_junk("beacon", r),
                assigned_pages=(0,),
                control_pages=(1,),
                page_digests=(_junk(0), _junk(1)),
                compared=(),
                previous=(),
                evidence=(),
                metrics=(Metric("gain", -1.0),),
                tolerances=(Metric("gain", 0.0),),
                verdict="fail",
                reason="forged",
            )
            for subject in honest_subjects
        ]
        return [signing.sign(m, self.keypair) for m in msgs]

    async def store(self, msg: object, report: SybilReport) -> None:
        report.stores_attempted += 1
        ok = await self.dht.store(records.key_for(msg), wire.encode(msg), get_dht_time() + 600, subkey=self.hotkey, return_future=True)
        report.stores_acknowledged += bool(ok)

    async def honest_targets(self, r: int, sybils: set[str]) -> list[tuple[bytes, str, bytes, int]]:
        """(peer id, kind, digest, size limit) of what honest nodes announced for round r."""
        targets = []
        for kind, key in (("payload", records.round_key(self.run_id, "contrib", r)), ("state", records.round_key(self.run_id, "state", r))):
            found = await self.dht.get(key, latest=True, return_future=True)
            if found is None or not isinstance(found.value, dict):
                continue
            for subkey, item in found.value.items():
                try:
                    msg = wire.decode(item.value)
                except Exception:
                    continue
                if subkey in sybils or not isinstance(msg, (ContributionMeta, StateAnnouncement)):
                    continue
                digest = msg.digest if isinstance(msg, ContributionMeta) else msg.state_hash
                targets.append((msg.peer_id, kind, digest, 1 << 30))
        return targets

    async def try_fetches(self, r: int, sybils: set[str], report: SybilReport) -> set[bytes]:
        """Ask honest nodes for what they announced; the peer ids they announced from."""
        targets = await self.honest_targets(r, sybils)
        for peer_id, kind, digest, limit in targets:
            report.fetches_attempted += 1
            try:
                await transfer.fetch(self.p2p, PeerID(peer_id), self.run_id, kind, digest, limit, timeout=10.0)
                report.fetches_served += 1
            except Exception as e:  # refused, as it should be; any shape of failure is a refusal
                log.debug("fetch of %s from %s refused: %r", kind, peer_id.hex()[:16], e)
        return {peer_id for peer_id, *_ in targets}

    async def try_pushes(self, msgs: list[object], honest_peers: set[bytes], report: SybilReport) -> None:
        """Push forgeries straight into honest nodes' inboxes, past the DHT."""
        peers = [PeerID(p) for p in sorted(honest_peers)]
        for msg in msgs:
            report.pushes_attempted += len(peers)
            report.pushes_taken += await push.push(self.p2p, peers, self.run_id, msg)


def try_commit(chain: ChainView, sybil: Sybil, report: SybilReport) -> None:
    try:
        chain.set_commitment(sybil.keypair, signed_binding(sybil.run_id, sybil.keypair, sybil.dht.peer_id.to_bytes()))
        report.commitments_accepted += 1
    except ChainError:
        report.commitments_refused += 1


async def run_sybils(
    spec: RunSpec, chain: ChainView, schedule: RoundSchedule, bootstrap: list[str], count: int, rounds: int, report_path: Path
) -> None:
    keypairs = [Keypair.create_from_uri(f"//gradswarm-sybil-{os.getpid()}-{i}") for i in range(count)]
    sybils = []
    for keypair in keypairs:
        dht = await asyncio.to_thread(
            hivemind.DHT, initial_peers=bootstrap, host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True
        )
        sybils.append(Sybil(spec.run_id, spec.codec.name, keypair, dht, await dht.replicate_p2p()))
    hotkeys = [s.hotkey for s in sybils]
    report = SybilReport(hotkeys=hotkeys, peer_ids=[s.dht.peer_id.to_base58() for s in sybils])
    honest = sorted({n.hotkey for n in chain.neurons()})
    for sybil in sybils:
        await asyncio.to_thread(try_commit, chain, sybil, report)
    try:
        while (r := schedule.round_at(time.time())) < rounds:
            r = max(r, 0)
            for sybil in sybils:
                forgeries = sybil.forgeries(r, hotkeys, honest)
                await asyncio.gather(*(sybil.store(m, report) for m in forgeries))
                honest_peers = await sybil.try_fetches(r, set(hotkeys), report)
                if r >= 1:
                    honest_peers |= await sybil.try_fetches(r - 1, set(hotkeys), report)
                await sybil.try_pushes(forgeries, honest_peers, report)
            atomic_write(report_path, json.dumps(asdict(report), indent=2).encode())
            await asyncio.sleep(FLOOD_SECONDS)
    finally:
        atomic_write(report_path, json.dumps(asdict(report), indent=2).encode())
        for sybil in sybils:
            await asyncio.to_thread(sybil.dht.shutdown)


def main() -> None:
    from node.chain.clock import run_schedule
    from node.cli import open_chain

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="a run.toml; its [node] bootstrap list is used")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True, help="flood until this round begins")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec, config = load_run_file(Path(args.config))
    chain = open_chain(spec)
    schedule = run_schedule(spec, chain)
    asyncio.run(run_sybils(spec, chain, schedule, list(config.bootstrap), args.count, args.rounds, Path(args.report)))


if __name__ == "__main__":
    main()
