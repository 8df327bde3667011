"""A node whose p2pd dies gets a new p2p stack by itself: same peer id, every stream handler back."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hivemind.p2p import PeerID

from node.swarm import swarm as swarm_module
from node.swarm import transfer, watch
from node.swarm.owned import OwnedDHT
from protocol.messages import FetchRequest
from tests.support.swarm import RUN, no_blobs


async def echo_service(p2p):
    async def answer(request: FetchRequest) -> bytes:
        return request.digest

    await transfer.serve_requests(p2p, "test/echo", FetchRequest, answer)


def test_a_killed_p2pd_is_replaced_and_serves_again(tmp_path, chain, monkeypatch):
    monkeypatch.setattr(watch, "WATCH_SECONDS", 0.5)

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


OWNER = """
import json, sys, time
import psutil
from node.swarm.owned import OwnedDHT
dht = OwnedDHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True)
family = [p.pid for p in psutil.Process().children(recursive=True)]
print(json.dumps(family), flush=True)
time.sleep(600)
"""


def test_the_dht_process_and_its_p2pd_end_with_a_killed_node():
    """kill -9 of the node must not leave its DHT process and p2pd holding its identity."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        family = json.loads(owner.stdout.readline())
        names = {psutil.Process(pid).name() for pid in family}
        assert "p2pd" in names and len(family) >= 2, names
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in family):
            time.sleep(0.2)
        alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert not alive, f"outlived the node: {alive}"
    finally:
        owner.kill()


EVENT_OWNER = """
import json, signal, threading, time
import psutil
from node.swarm.owned import OwnedDHT
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())  # what the bootstrap daemon installs before its DHT starts
dht = OwnedDHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True)
print(json.dumps(dht.pid), flush=True)
time.sleep(600)
"""


def test_sigterm_ends_the_dht_process_whatever_handler_its_parent_had():
    """hivemind's shutdown ends with terminate() when the DHT does not stop in time. The DHT process had
    inherited the bootstrap's handler, which only set an event of the parent, so SIGTERM did nothing, and
    the bootstrap waited for it at exit for ever (two bootstraps outlived a live fuzz run by 17 min)."""
    owner = subprocess.Popen([sys.executable, "-c", EVENT_OWNER], stdout=subprocess.PIPE, text=True)
    try:
        dht = psutil.Process(json.loads(owner.stdout.readline()))
        dht.terminate()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and dht.is_running() and dht.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.2)
        assert not dht.is_running() or dht.status() == psutil.STATUS_ZOMBIE, "the DHT process ignored SIGTERM"
    finally:
        owner.kill()
        owner.wait()


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
JOINER = """
import sys
from node.swarm.owned import ClockSkew, start_dht
try:
    dht = start_dht(initial_peers=[sys.argv[1]], host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True)
except ClockSkew as e:
    print(e)
    sys.exit(2)
print("joined")
dht.shutdown()
"""


@pytest.mark.skipif(not FAKETIME.exists(), reason="needs libfaketime (apt-get install faketime)")
def test_a_clock_a_few_seconds_off_joins_and_one_far_off_is_told_why():
    """hivemind alone refuses peers more than 3 s apart; machines without NTP drift by more."""
    dht = OwnedDHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True, await_ready=True)
    try:
        (maddr,) = [str(a) for a in dht.get_visible_maddrs()]

        def join(offset: str) -> subprocess.CompletedProcess:
            env = {**os.environ, "LD_PRELOAD": str(FAKETIME), "FAKETIME": offset}
            return subprocess.run([sys.executable, "-c", JOINER, maddr], capture_output=True, text=True, env=env, timeout=120)

        near, far = join("+5s"), join("-40s")
        assert near.returncode == 0 and "joined" in near.stdout, near.stderr[-2000:]
        assert far.returncode == 2, far.stderr[-2000:]
        assert "clock is more than 10 s off" in far.stdout and "timedatectl" in far.stdout
    finally:
        dht.shutdown()
