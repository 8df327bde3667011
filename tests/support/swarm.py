"""Signed records of one run, as the DHT carries them, and swarms on loopback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hivemind.dht.routing import DHTID
from hivemind.dht.validation import DHTRecord
from hivemind.utils import get_dht_time
from hivemind.utils.serializer import MSGPackSerializer

from node.swarm import records
from node.swarm.swarm import Swarm
from protocol import signing, wire
from protocol.messages import ContributionMeta, ManifestEntry, RoundManifest

RUN = b"\x07" * 32


def contribution(kp, round_=1, run=RUN, **changes) -> ContributionMeta:
    """A contribution announcement signed by ``kp``; ``changes`` replace fields before signing."""
    m = ContributionMeta(
        run_id=run,
        round=round_,
        hotkey=kp.ss58_address,
        peer_id=b"p",
        digest=b"\x01" * 32,
        nbytes=5,
        codec="topk",
        trained_from=b"\x03" * 32,
    )
    return signing.sign(dataclasses.replace(m, **changes), kp)


def manifest(kp, run=RUN) -> RoundManifest:
    """A round-1 manifest signed by ``kp``, naming ``kp``'s own contribution."""
    m = RoundManifest(
        run_id=run,
        round=1,
        hotkey=kp.ss58_address,
        base_state_hash=b"\0" * 32,
        entries=(ManifestEntry(kp.ss58_address, b"\1" * 32),),
        result_state_hash=b"\2" * 32,
    )
    return signing.sign(m, kp)


def record_for(msg, *, key=None, subkey=None, ttl=60.0, value=None) -> DHTRecord:
    """The DHT record that stores ``msg`` where the swarm puts it, or with any field overridden."""
    return DHTRecord(
        key=DHTID.generate(source=key or records.key_for(msg)).to_bytes(),
        subkey=MSGPackSerializer.dumps(subkey if subkey is not None else msg.hotkey),
        value=MSGPackSerializer.dumps(value if value is not None else wire.encode(msg)),
        expiration_time=get_dht_time() + ttl,
    )


async def no_blobs(kind, digest):
    """A swarm's blob lookup that holds nothing."""
    return None


async def no_states(digest):
    """A node's held-state lookup that holds nothing (the audit stream answers from its store alone)."""
    return None


async def start_swarm(run: bytes, chain, tmp_path: Path, name: str, bootstrap=()) -> Swarm:
    """A started Swarm on loopback with its identity under ``tmp_path / name``."""
    swarm = Swarm(run, chain, bootstrap=list(bootstrap), host="127.0.0.1", port=0, identity_path=tmp_path / name / "p2p.key")
    await swarm.start(no_blobs)
    return swarm
