"""Sybil resistance between real peers on loopback: pushed records reach bound peers only,
and streams from peers no hotkey bound are refused."""

import asyncio
import hashlib
import time

import pytest
from hivemind.p2p import P2P

from node.swarm import push, records, transfer
from node.swarm.binding import ChainBindings, signed_binding
from node.swarm.transfer import TransferError
from protocol.messages import ContributionMeta
from tests.support.swarm import RUN, contribution, start_swarm

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's


def test_records_reach_bound_peers_without_the_dht_and_sybils_cannot_push(tmp_path, chain, keys):
    alice, bob, eve = keys["Alice"], keys["Bob"], keys["Eve"]
    chain.register(alice.ss58_address)
    chain.register(bob.ss58_address)

    async def scenario():
        a = await start_swarm(RUN, chain, tmp_path, "a")
        b = await start_swarm(RUN, chain, tmp_path, "b", bootstrap=a.visible_maddrs())
        sybil = await P2P.create(initial_peers=a.visible_maddrs(), host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        try:
            chain.set_commitment(alice, signed_binding(RUN, alice, a.peer_id))
            chain.set_commitment(bob, signed_binding(RUN, bob, b.peer_id))
            for swarm in (a, b):
                swarm.bindings.forget()
            # Alice's record travels only by push (never stored in the DHT): Bob still reads it
            record = contribution(alice, round_=3)
            assert await push.push(a.p2p, [b.dht.peer_id], RUN, record) == 1
            assert await b.get(records.round_key(RUN, "contrib", 3), ContributionMeta) == [record]
            assert b.inbox.filled == 1
            # put() also pushes, in the background, beside the DHT store
            later = contribution(alice, round_=4)
            await a.put(later, time.time() + 60)
            key = records.round_key(RUN, "contrib", 4)
            for _ in range(50):
                b.inbox.fill(key, ContributionMeta, got := {})
                if got:
                    break
                await asyncio.sleep(0.1)
            assert got == {alice.ss58_address: later}
            # An unbound peer's push is refused before a byte is read, whatever it carries
            refused = b.refused_streams
            assert await push.push(sybil, [b.dht.peer_id], RUN, contribution(bob, round_=7)) == 0
            assert b.refused_streams == refused + 1
            b.inbox.fill(records.round_key(RUN, "contrib", 7), ContributionMeta, got := {})
            assert got == {}
            # A bound peer relaying an unregistered signer's record gets it refused by the validator's rules
            assert await push.push(a.p2p, [b.dht.peer_id], RUN, contribution(eve, round_=3)) == 0
            assert b.inbox.validator.rejected["unregistered"] == 1
        finally:
            await sybil.shutdown()
            await b.shutdown()
            await a.shutdown()

    asyncio.run(scenario())


def test_stream_from_an_unbound_peer_is_refused(chain, keys):
    alice = keys["Alice"]
    chain.register(alice.ss58_address)
    blob = b"payload" * 100
    digest = hashlib.sha256(blob).digest()

    async def lookup(kind, d):
        return blob if d == digest else None

    async def scenario():
        server = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        client = await P2P.create(initial_peers=await server.get_visible_maddrs(), host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        bindings = ChainBindings(RUN, chain)
        try:

            async def bound(peer_id: bytes) -> bool:
                return await bindings.hotkey_of(peer_id) is not None

            await transfer.serve(server, RUN, lookup, bound)
            with pytest.raises(TransferError):  # nobody bound the client's peer id: the stream is closed unread
                await transfer.fetch(client, server.peer_id, RUN, "payload", digest, max_bytes=len(blob), timeout=10)
            chain.set_commitment(alice, signed_binding(RUN, alice, client.peer_id.to_bytes()))
            assert await transfer.fetch(client, server.peer_id, RUN, "payload", digest, max_bytes=len(blob)) == blob
        finally:
            await client.shutdown()
            await server.shutdown()

    asyncio.run(scenario())
