"""The DHT validator and the swarm's record path, against a real hivemind DHT on loopback."""

import asyncio
import dataclasses
import time

import pytest
from bittensor.sp_core import Keypair
from hivemind.dht.routing import DHTID
from hivemind.dht.validation import DHTRecord
from hivemind.utils import get_dht_time
from hivemind.utils.serializer import MSGPackSerializer

from node.chain import DevChain
from node.swarm import records
from node.swarm.swarm import Swarm
from protocol import signing, wire
from protocol.messages import (
    ContributionMeta,
    ManifestEntry,
    PeerBinding,
    RoundManifest,
)

RUN = b"\x07" * 32


@pytest.fixture()
def chain(tmp_path):
    chain = DevChain.create(tmp_path / "chain.sqlite", max_validators=1)
    return chain


@pytest.fixture(scope="module")
def keys():
    return {name: Keypair.create_from_uri(f"//{name}") for name in ("Alice", "Bob", "Eve")}


def record_for(msg, *, key=None, subkey=None, ttl=60.0, value=None):
    return DHTRecord(
        key=DHTID.generate(source=key or records.key_for(msg)).to_bytes(),
        subkey=MSGPackSerializer.dumps(subkey if subkey is not None else msg.hotkey),
        value=MSGPackSerializer.dumps(value if value is not None else wire.encode(msg)),
        expiration_time=get_dht_time() + ttl,
    )


def meta(kp, round_=1, run=RUN):
    m = ContributionMeta(run_id=run, round=round_, hotkey=kp.ss58_address, peer_id=b"p", digest=b"\x01" * 32, nbytes=5, codec="topk", base_state_hash=b"\x03" * 32)
    return signing.sign(m, kp)


def test_validator_accepts_only_well_formed_signed_registered_records(chain, keys):
    alice, bob, eve = keys["Alice"], keys["Bob"], keys["Eve"]
    chain.register(alice.ss58_address)
    chain.add_stake(alice.ss58_address, 10)
    chain.register(bob.ss58_address)
    chain.add_stake(bob.ss58_address, 1)
    v = records.RunRecordValidator(RUN, chain)

    good = meta(alice)
    assert v.validate(record_for(good))
    # unregistered hotkey
    assert not v.validate(record_for(meta(eve)))
    # unsigned
    assert not v.validate(record_for(dataclasses.replace(good, signature=b"")))
    # wrong run (validly signed for another run)
    assert not v.validate(record_for(meta(alice, run=b"\x08" * 32)))
    # stored under another round's key than it names
    assert not v.validate(record_for(good, key=records.round_key(RUN, "contrib", 2)))
    # subkey that is not the signer
    assert not v.validate(record_for(good, subkey=bob.ss58_address))
    # pinned far into the future
    assert not v.validate(record_for(good, ttl=10 * records.MAX_RECORD_TTL))
    # not a wire message at all
    assert not v.validate(record_for(good, value=b"\x00garbage"))
    assert not v.validate(DHTRecord(b"k", b"s", b"\xc1", get_dht_time() + 5))

    # manifests only from validator permits (max_validators=1: Alice only)
    def manifest(kp):
        m = RoundManifest(run_id=RUN, round=1, hotkey=kp.ss58_address, base_state_hash=b"\0" * 32,
                          entries=(ManifestEntry(kp.ss58_address, b"\1" * 32),), result_state_hash=b"\2" * 32)
        return signing.sign(m, kp)

    assert v.validate(record_for(manifest(alice)))
    assert not v.validate(record_for(manifest(bob)))


def test_records_travel_through_a_real_dht_and_forgeries_do_not(tmp_path, chain, keys):
    alice, eve = keys["Alice"], keys["Eve"]
    chain.register(alice.ss58_address)
    chain.add_stake(alice.ss58_address, 1)

    async def scenario():
        async def nothing(kind, digest):
            return None

        a = Swarm(RUN, chain, bootstrap=[], host="127.0.0.1", port=0, identity_path=tmp_path / "a" / "p2p.key")
        await a.start(nothing)
        b = Swarm(RUN, chain, bootstrap=a.visible_maddrs(), host="127.0.0.1", port=0, identity_path=tmp_path / "b" / "p2p.key")
        await b.start(nothing)
        try:
            binding = signing.sign(PeerBinding(run_id=RUN, hotkey=alice.ss58_address, peer_id=a.peer_id, expires_at=time.time() + 60), alice)
            assert await a.put(binding, binding.expires_at)
            got = await b.get(records.peers_key(RUN), PeerBinding)
            assert got == [binding]
            # Eve is not registered: every DHT node refuses her record
            fake = signing.sign(PeerBinding(run_id=RUN, hotkey=eve.ss58_address, peer_id=b.peer_id, expires_at=time.time() + 60), eve)
            assert not await b.put(fake, fake.expires_at)
            got = await a.get(records.peers_key(RUN), PeerBinding)
            assert [g.hotkey for g in got] == [alice.ss58_address]
        finally:
            await b.shutdown()
            await a.shutdown()

    asyncio.run(scenario())
