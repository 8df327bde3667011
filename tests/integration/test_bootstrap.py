"""The bootstrap daemon and the nodes' failover, with real hivemind DHTs and p2pd on loopback.

Fast tests run bootstraps in process (hivemind still puts each DHT in its own
process with its own p2pd); one runs the real `gradswarm bootstrap run`
command. The `slow` one runs a whole demo swarm through losing both bootstraps.
The parts that need no network are in tests/unit/test_bootstrap.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import hivemind
import pytest
from hivemind.utils import get_dht_time
from prometheus_client.parser import text_string_to_metric_families

from bootstrap import stats as stats_module
from bootstrap.daemon import Bootstrap, BootstrapSettings
from bootstrap.identity import ensure_identity
from bootstrap.netio import TcpTraffic
from bootstrap.validation import REASONS
from node.config import NodeConfig, RunSpec, render_run_file
from node.swarm import records
from node.swarm import watch as swarm_watch
from protocol import signing, wire
from protocol.messages import PeerBinding
from tests.support import free_port, wait_for
from tests.support.swarm import contribution, start_swarm

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("/ip4/127.0.0.1/tcp/0",)
POLL = 0.2  # seconds between polls of a daemon


def start_bootstrap(tmp_path: Path, spec: RunSpec, chain, name: str = "boot", **settings) -> Bootstrap:
    settings = {"identity": tmp_path / name / "p2p.key", "listen": LOOPBACK, "http": ("127.0.0.1", 0), "stats_interval": 0.3, **settings}
    boot = Bootstrap(BootstrapSettings(**settings), spec.run_id, chain)
    boot.start()
    return boot


def get(url: str | urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(boot: Bootstrap) -> dict[tuple[str, tuple], float]:
    """/metrics parsed by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    status, body = get(boot.http_url + "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


# ----------------------------------------------------------------- identity and addresses


def test_restarted_bootstrap_keeps_its_peer_id_and_address(tmp_path, spec, chain):
    boot = start_bootstrap(tmp_path, spec, chain)
    try:
        peer_id = str(boot.dht.peer_id)
        (maddr,) = [str(a) for a in boot.dht.get_visible_maddrs()]
    finally:
        boot.stop()
    assert peer_id == str(ensure_identity(tmp_path / "boot" / "p2p.key"))
    assert (tmp_path / "boot" / "p2p.key").stat().st_mode & 0o777 == 0o600
    port = maddr.split("/")[4]
    again = start_bootstrap(tmp_path, spec, chain, listen=(f"/ip4/127.0.0.1/tcp/{port}",))
    try:
        assert [str(a) for a in again.dht.get_visible_maddrs()] == [maddr]
    finally:
        again.stop()


def test_bootstraps_that_list_each_other_come_up_in_any_order(tmp_path, spec, chain, monkeypatch):
    monkeypatch.setattr(stats_module, "HEARTBEAT_SECONDS", 0.5)
    port = free_port()
    b_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{ensure_identity(tmp_path / 'b' / 'p2p.key')}"
    a = start_bootstrap(tmp_path, spec, chain, name="a", peers=(b_addr,))  # b is down: a starts all the same
    try:
        b = start_bootstrap(tmp_path, spec, chain, name="b", listen=(f"/ip4/127.0.0.1/tcp/{port}",))
        try:  # b lists nobody: a finds it by re-dialing
            wait_for(lambda: metrics(b).get(("gradswarm_bootstrap_peers_connected", ())) == 1, 30, interval=POLL, what="a to re-dial b")
        finally:
            b.stop()
    finally:
        a.stop()


def test_bootstrap_command_prints_its_multiaddrs_and_restarts_as_the_same_peer(tmp_path, spec, chain):
    run_file = tmp_path / "run.toml"
    run_file.write_text(render_run_file(spec, NodeConfig()))
    info_file = tmp_path / "maddrs.json"

    def launch(listen: str) -> tuple[subprocess.Popen, dict]:
        info_file.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "bootstrap",
                "run",
                "--run",
                str(run_file),
                "--listen",
                listen,
                "--identity",
                str(tmp_path / "id" / "p2p.key"),
                "--maddrs-file",
                str(info_file),
                "--http",
                "127.0.0.1:0",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: info_file.exists() or proc.poll() is not None, 60, interval=POLL, what="the maddrs file")
        assert proc.poll() is None, proc.stdout.read()
        return proc, json.loads(info_file.read_text())

    def stop(proc: subprocess.Popen) -> str:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        return out

    proc, info = launch("/ip4/127.0.0.1/tcp/0")
    try:
        status, body = get(info["http"] + "/healthz")
        assert status == 200 and json.loads(body)["peer_id"] == info["peer_id"]
    finally:
        out = stop(proc)
    (maddr,) = info["maddrs"]
    assert maddr.endswith(f"/p2p/{info['peer_id']}") and f"  {maddr}" in out  # printed for operators
    assert (tmp_path / "id" / "p2p.key").stat().st_mode & 0o777 == 0o600
    proc, again = launch(maddr.split("/p2p/")[0])
    stop(proc)
    assert again["peer_id"] == info["peer_id"] and again["maddrs"] == [maddr]


def test_public_host_settings_reach_p2pd(tmp_path, spec, chain):
    port = free_port()
    boot = start_bootstrap(
        tmp_path,
        spec,
        chain,
        listen=(f"/ip4/127.0.0.1/tcp/{port}",),
        announce=(f"/ip4/127.0.0.2/tcp/{port}",),
        reachability="public",
        use_relay=False,
    )
    try:
        assert [str(a) for a in boot.dht.get_visible_maddrs()] == [f"/ip4/127.0.0.2/tcp/{port}/p2p/{boot.dht.peer_id}"]
    finally:
        boot.stop()


# ----------------------------------------------------------------- health and metrics


def test_metrics_parse_and_count_connected_peers(tmp_path, spec, chain):
    boot = start_bootstrap(tmp_path, spec, chain)
    initial = [str(a) for a in boot.dht.get_visible_maddrs()]
    nodes = []
    try:
        nodes = [hivemind.DHT(initial_peers=initial, host_maddrs=list(LOOPBACK), start=True) for _ in range(3)]
        connected = ("gradswarm_bootstrap_peers_connected", ())
        routing = ("gradswarm_bootstrap_routing_table_peers", ())
        wait_for(lambda: metrics(boot).get(connected) == 3, 20, interval=POLL, what="3 connected peers in /metrics")
        # A peer enters the routing table on its first DHT call, which may come a moment after it connected.
        wait_for(lambda: metrics(boot).get(routing) == 3, 20, interval=POLL, what="3 peers in the routing table")
        m = metrics(boot)
        assert m[connected] == 3 and m[routing] == 3
        assert m[("gradswarm_bootstrap_uptime_seconds", ())] > 0
        assert {("direction", "in"), ("direction", "out")} <= {
            labels[0] for name, labels in m if name == "gradswarm_bootstrap_network_bytes_total"
        }
        assert m[("gradswarm_bootstrap_network_bytes_total", (("direction", "in"),))] > 0  # the nodes' pings
        assert {dict(labels)["process"] for name, labels in m if name == "gradswarm_bootstrap_resident_memory_bytes"} == {
            "main",
            "dht",
            "p2pd",
        }
        assert {dict(labels)["reason"] for name, labels in m if name == "gradswarm_bootstrap_records_rejected_total"} == set(REASONS)
        status, body = get(boot.http_url + "/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert health["peer_id"] == str(boot.dht.peer_id) and health["peers_connected"] == 3
        assert health["records_held"] == 0 and health["uptime_seconds"] >= 0
        nodes.pop().shutdown()
        wait_for(lambda: metrics(boot).get(connected) == 2, 20, interval=POLL, what="a departed peer to leave the count")
    finally:
        for node in nodes:
            node.shutdown()
        boot.stop()


def test_http_serves_only_get_on_two_paths_and_survives_garbage(tmp_path, spec, chain):
    boot = start_bootstrap(tmp_path, spec, chain)
    try:
        assert get(boot.http_url + "/nope")[0] == 404
        assert get(boot.http_url + "/metrics/../etc/passwd")[0] == 404
        post = urllib.request.Request(boot.http_url + "/healthz", data=b"x", method="POST")
        assert get(post)[0] == 405
        host, port = boot.http.server_address[:2]
        for junk in (b"\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b""):
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(1024)
        assert get(boot.http_url + "/healthz")[0] == 200
    finally:
        boot.stop()


# ----------------------------------------------------------------- validation


def test_bootstrap_refuses_and_counts_records_nodes_would_reject(tmp_path, spec, chain, registered):
    alice, eve = registered["Alice"], registered["Eve"]
    boot = start_bootstrap(tmp_path, spec, chain)
    # A peer with no validator of its own pushes whatever it likes to the bootstrap.
    pusher = hivemind.DHT(initial_peers=[str(a) for a in boot.dht.get_visible_maddrs()], host_maddrs=list(LOOPBACK), start=True)
    try:
        good, stranger = contribution(alice, run=spec.run_id), contribution(eve, run=spec.run_id)
        pushes = [
            (records.key_for(stranger), stranger.hotkey, wire.encode(stranger)),  # unregistered
            (records.key_for(good), good.hotkey, wire.encode(contribution(alice, run=b"\x09" * 32))),  # wrong run
            (records.round_key(spec.run_id, "contrib", 9), good.hotkey, wire.encode(good)),  # misplaced
            (records.key_for(good), good.hotkey, b"\x00garbage"),  # malformed
            (records.key_for(good), good.hotkey, wire.encode(good)),  # valid: stored
        ]
        for key, subkey, value in pushes:
            pusher.store(key, value, get_dht_time() + 60, subkey=subkey)

        def counted():
            m = metrics(boot)
            rejected = {r: m[("gradswarm_bootstrap_records_rejected_total", (("reason", r),))] for r in REASONS}
            return m if sum(rejected.values()) >= 4 and m[("gradswarm_bootstrap_dht_records", (("table", "storage"),))] >= 1 else None

        m = wait_for(counted, 20, interval=POLL, what="the pushed records in /metrics")
        for reason in ("unregistered", "wrong_run", "misplaced", "malformed"):
            assert m[("gradswarm_bootstrap_records_rejected_total", (("reason", reason),))] >= 1, reason
        assert m[("gradswarm_bootstrap_records_accepted_total", ())] >= 1
        assert m[("gradswarm_bootstrap_dht_records", (("table", "storage"),))] == 1  # only the valid record
    finally:
        pusher.shutdown()
        boot.stop()


def test_tcp_byte_counters_see_this_processes_traffic():
    traffic = TcpTraffic(pid=__import__("os").getpid())
    before_in, before_out = traffic.sample()
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.sendall(b"x" * 100_000)
        received = 0
        while received < 100_000:
            received += len(peer.recv(1 << 16))
        peer.sendall(b"y" * 5_000)
        got = 0
        while got < 5_000:
            got += len(client.recv(1 << 16))
        live_in, live_out = traffic.sample()
        client.close()
        peer.close()
    closed_in, closed_out = traffic.sample()
    # both ends are ours: each byte counts once received and once sent
    assert live_in - before_in >= 105_000 and live_out - before_out >= 105_000
    assert (closed_in, closed_out) >= (live_in, live_out)  # closed sockets keep counting in the totals


# ----------------------------------------------------------------- nodes


def test_node_joins_when_the_first_bootstrap_it_lists_is_down(tmp_path, spec, chain, registered):
    alice = registered["Alice"]
    dead = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{ensure_identity(tmp_path / 'dead.key')}"
    boot = start_bootstrap(tmp_path, spec, chain)
    live = [str(a) for a in boot.dht.get_visible_maddrs()]

    async def scenario():
        a = await start_swarm(spec.run_id, chain, tmp_path, "a", bootstrap=[dead, *live])
        b = await start_swarm(spec.run_id, chain, tmp_path, "b", bootstrap=[dead, *live])
        try:
            binding = signing.sign(
                PeerBinding(run_id=spec.run_id, hotkey=alice.ss58_address, peer_id=a.peer_id, expires_at=time.time() + 60), alice
            )
            assert await a.put(binding, binding.expires_at)
            assert await b.get(records.peers_key(spec.run_id), PeerBinding) == [binding]
        finally:
            await b.shutdown()
            await a.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        boot.stop()


def test_node_that_lost_every_peer_redials_the_bootstraps_with_backoff(tmp_path, spec, chain, monkeypatch, caplog):
    monkeypatch.setattr(swarm_watch, "WATCH_SECONDS", 0.3)
    monkeypatch.setattr(swarm_watch, "REJOIN_FIRST_DELAY", 0.3)
    boot = start_bootstrap(tmp_path, spec, chain)
    (maddr,) = [str(a) for a in boot.dht.get_visible_maddrs()]

    async def scenario():
        node = await start_swarm(spec.run_id, chain, tmp_path, "n", bootstrap=[maddr])
        try:
            assert len(await node.p2p.list_peers()) == 1
            await asyncio.to_thread(boot.stop)
            while "next try in 0.6 s" not in caplog.text:  # 0.3 s, then 0.6 s: it backs off
                await asyncio.sleep(0.2)
            back = await asyncio.to_thread(start_bootstrap, tmp_path, spec, chain, listen=(maddr.split("/p2p/")[0],))
            try:
                while "rejoined the swarm through 1 of 1 bootstrap peers" not in caplog.text:
                    await asyncio.sleep(0.2)
                assert len(await node.p2p.list_peers()) == 1
            finally:
                await asyncio.to_thread(back.stop)
        finally:
            await node.shutdown()

    with caplog.at_level("INFO", logger="node.swarm.watch"):
        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


@pytest.mark.slow
def test_swarm_keeps_exchanging_contributions_after_every_bootstrap_is_gone(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "demo",
            "--out",
            str(tmp_path),
            "--peers",
            "3",
            "--rounds",
            "5",
            "--round-seconds",
            "20",
            "--stop-bootstraps",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=480,
    )
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("nodes/*/node.log")))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    summary = json.loads((tmp_path / "summary.json").read_text())
    stopped = summary["bootstraps_stopped"]
    assert sorted(s["bootstrap"] for s in stopped) == ["boot0", "boot1"]
    down_from = max(s["round"] for s in stopped)
    logs = [
        {r["round"]: r for r in map(json.loads, (tmp_path / "nodes" / f"node{i}" / "rounds.jsonl").read_text().splitlines())}
        for i in range(3)
    ]
    after = [r for r in logs[0] if r >= down_from]
    assert len(after) >= 2, logs[0]
    for r in after:
        row = [log[r] for log in logs]
        # Every node fetched every other node's contribution over p2p (the verifier,
        # not the network, decides which of them the manifest then keeps) ...
        assert sum(x["upload_payload_bytes"] for x in row) >= 2 * sum(x["payload_bytes"] for x in row), row
        # ... and the round merged several of them into one state that all nodes share.
        assert row[0]["manifest_entries"] >= 2 and len({x["state_hash"] for x in row}) == 1, row
