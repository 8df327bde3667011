"""A node whose p2pd dies gets a new p2p stack by itself: same peer id, every stream handler back."""

import asyncio

import psutil
from hivemind.p2p import PeerID

from node.swarm import swarm as swarm_module
from node.swarm import transfer
from protocol.messages import FetchRequest
from tests.support.swarm import RUN, no_blobs


async def echo_service(p2p):
    async def answer(request: FetchRequest) -> bytes:
        return request.digest

    await transfer.serve_requests(p2p, "test/echo", FetchRequest, answer)


def test_a_killed_p2pd_is_replaced_and_serves_again(tmp_path, chain, monkeypatch):
    monkeypatch.setattr(swarm_module, "WATCH_SECONDS", 0.5)

    async def scenario():
        a = swarm_module.Swarm(RUN, chain, bootstrap=[], host="127.0.0.1", port=0, identity_path=tmp_path / "a" / "p2p.key")
        await a.start(no_blobs, echo_service)
        b = swarm_module.Swarm(RUN, chain, bootstrap=a.visible_maddrs(), host="127.0.0.1", port=0, identity_path=tmp_path / "b" / "p2p.key")
        await b.start(no_blobs)
        try:
            request = FetchRequest(run_id=RUN, kind="payload", digest=b"\x05" * 32)
            peer = PeerID(a.peer_id)
            assert await transfer.ask(b.p2p, peer, "test/echo", request, 64) == b"\x05" * 32
            before, old_dht = a.peer_id, a.dht
            daemons = [p for p in psutil.Process(old_dht.pid).children(recursive=True) if p.name() == "p2pd"]
            assert daemons, "the DHT process runs its own p2pd"
            for daemon in daemons:
                daemon.kill()
            for _ in range(120):
                await asyncio.sleep(0.25)
                if a.dht is not old_dht and a.dht is not None and a.dht.is_alive():
                    break
            assert a.dht is not old_dht, "the dead daemon was not replaced"
            assert a.peer_id == before, "a new stack must keep the bound peer id"
            for _ in range(40):  # the new daemon has a new address: reach it through the bootstrap path
                try:
                    await b.p2p._client.connect(peer, [m.decapsulate(f"/p2p/{peer.to_base58()}") for m in await a.p2p.get_visible_maddrs()])
                    assert await transfer.ask(b.p2p, peer, "test/echo", request, 64, timeout=5) == b"\x05" * 32
                    break
                except Exception:
                    await asyncio.sleep(0.5)
            else:
                raise AssertionError("the replaced stack does not serve its stream handlers")
        finally:
            await b.shutdown()
            await a.shutdown()

    asyncio.run(scenario())
