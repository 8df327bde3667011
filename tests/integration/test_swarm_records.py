"""The swarm's record path against a real hivemind DHT on loopback."""

import asyncio
import time

import pytest

from node.swarm import records
from protocol import signing
from protocol.messages import PeerBinding
from tests.support.swarm import RUN, start_swarm

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's


def test_records_travel_through_a_real_dht_and_forgeries_do_not(tmp_path, chain, keys):
    alice, eve = keys["Alice"], keys["Eve"]
    chain.register(alice.ss58_address)
    chain.add_stake(alice.ss58_address, 1)

    async def scenario():
        a = await start_swarm(RUN, chain, tmp_path, "a")
        b = await start_swarm(RUN, chain, tmp_path, "b", bootstrap=a.visible_maddrs())
        try:
            binding = signing.sign(
                PeerBinding(run_id=RUN, hotkey=alice.ss58_address, peer_id=a.peer_id, expires_at=time.time() + 60), alice
            )
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
