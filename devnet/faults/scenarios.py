"""The fault scenarios: each applies one fault to a running FaultSwarm at a chosen round and phase.

Times are in round lengths since round 0's start (2.5 is halfway through round 2's window). A fault
function blocks until its fault is over and returns what it did; the harness then lets the swarm run
to its last round and checks the invariants (invariants.py).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devnet.faults.swarm import FaultSwarm


@dataclass
class Fault:
    targets: list[str]  # the faulted nodes; the others are the healthy ones
    start: float  # round lengths since round 0
    end: float
    notes: list[str] = field(default_factory=list)
    applied: bool = True  # false when the fault could not be made as scripted (the scenario then fails)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    apply: Callable[[FaultSwarm, random.Random], Fault]
    peers: int = 3
    rounds: int = 8
    fast: bool = False  # in the default test run
    nat: frozenset[str] = frozenset()
    setup: Callable[[FaultSwarm], None] = lambda swarm: None  # before any process starts


def kill_and_restart(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """kill -9 node2 at a random moment between rounds 1.5 and 2.5, restart it; then again inside one of its
    checkpoint writes from round 3 on."""
    target, member = "node2", swarm.nodes["node2"]
    start = 1.5 + rng.random()
    swarm.wait_until(start)
    member.signal(signal.SIGKILL)
    swarm.restart(target)
    notes = [f"killed at round {start:.2f}"]
    swarm.wait_until(3.0)
    caught = _kill_inside_write(swarm, target, until=swarm.at(4.5))
    notes.append(f"killed inside the write of {caught}" if caught else "no checkpoint write seen: killed at round 4.5")
    if not caught:
        member.signal(signal.SIGKILL)
    swarm.restart(target)
    return Fault([target], start, swarm.round_now(), notes, applied=bool(caught))


def _kill_inside_write(swarm: FaultSwarm, name: str, until: float) -> str:
    """SIGKILL `name` the moment one of its atomic writes has a temp file open; the file's name, or ""."""
    folder, member = swarm.data_dir(name), swarm.nodes[name]
    while time.time() < until:
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    member.signal(signal.SIGKILL)
                    return entry.name
        time.sleep(0.001)
    return ""


def kill_signer(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """kill -9 node0, the rank-0 manifest signer, in the 2 s after round 3's reveal, when it signs once
    every contribution is in (its nominal slot, at collect, comes later); restart it a round later."""
    moment = 3 + swarm.schedule.phases.reveal + rng.uniform(0, 2.0) / swarm.schedule.round_seconds
    swarm.wait_until(moment)
    swarm.nodes["node0"].signal(signal.SIGKILL)
    log = swarm.data_dir("node0") / "node.log"
    signed = "round 3: signed manifest" in log.read_text(errors="replace") if log.exists() else False
    swarm.wait_until(moment + 1)
    swarm.restart("node0")
    return Fault(["node0"], moment, moment + 1, [f"killed at round {moment:.3f}, {'after' if signed else 'before'} it signed round 3"])


def freeze(swarm: FaultSwarm, rng: random.Random) -> Fault:
    swarm.wait_until(2.5)
    swarm.nodes["node2"].signal(signal.SIGSTOP)
    swarm.wait_until(4.5)
    swarm.nodes["node2"].signal(signal.SIGCONT)
    return Fault(["node2"], 2.5, 4.5)


def kill_p2pd(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """kill -9 every p2pd of node2 (its DHT's and its own); a node that exits for it is restarted."""
    swarm.wait_until(2.5)
    daemons = swarm.nodes["node2"].children("p2pd")
    for daemon in daemons:
        with contextlib.suppress(OSError):
            daemon.kill()
    notes = [f"killed {len(daemons)} p2pd"]
    deadline = swarm.at(4.5)
    member = swarm.nodes["node2"]
    while member.alive() and time.time() < deadline:
        time.sleep(0.5)
    if not member.alive():
        notes.append(f"the node exited with {member.process.returncode}; restarted at round {swarm.round_now():.2f}")
        swarm.restart("node2")
    return Fault(["node2"], 2.5, swarm.round_now(), notes)


def chain_outage(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """The dev chain's files vanish for three rounds (as an NFS server going down), then come back."""
    chain = Path(swarm.spec.chain.path)
    hidden = chain.parent / "chain-outage"
    hidden.mkdir(exist_ok=True)
    swarm.wait_until(2.5)
    moved = [p for p in chain.parent.glob(chain.name + "*") if p.is_file()]
    for path in moved:
        path.rename(hidden / path.name)
    swarm.wait_until(5.5)
    for path in moved:
        (hidden / path.name).rename(path)
    return Fault([], 2.5, 5.5)


def skew_5s(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """node1 runs 5 s ahead and node2 5 s behind for the whole run (set up before they start)."""
    return Fault(["node1", "node2"], 0.0, 0.0, ["node1 +5 s, node2 -5 s from the start"])


def _skewed_clocks(swarm: FaultSwarm) -> None:
    swarm.nodes["node1"].clock, swarm.nodes["node2"].clock = "+5s", "-5s"


def skew_round(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """node2 is restarted one round ahead at round 2.5, and restarted on the true time at 4.5. A clock
    that far off is more than the DHT accepts (node/swarm/owned.py): the node must refuse to start,
    saying why, and come back once its clock is right."""
    ahead = f"+{swarm.schedule.round_seconds:.0f}s"
    member = swarm.nodes["node2"]
    swarm.wait_until(2.5)
    member.signal(signal.SIGTERM)
    swarm.restart("node2", clock=ahead)
    swarm.wait_until(4.5)
    refused = not member.alive()
    member.signal(signal.SIGTERM)
    swarm.restart("node2")
    said = "timedatectl" in member.log.read_text(errors="replace")
    notes = [f"clock {ahead}: " + (f"refused to start (exit {member.exits[-1]}), saying why" if refused and said else "kept running")]
    return Fault(["node2"], 2.5, 4.5, notes)


DISK_MB = 400


def _small_disk(swarm: FaultSwarm) -> None:
    folder = swarm.data_dir("node2")
    folder.mkdir(parents=True, exist_ok=True)
    keep = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "gradswarm-faults", str(folder)], check=True)
    for name, data in keep.items():
        (folder / name).write_bytes(data)
    swarm.cleanups.append(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))


def disk_full(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """node2's data disk (a tmpfs) fills up at round 2.5 and is freed at 4.5."""
    filler = swarm.data_dir("node2") / "filler"
    swarm.wait_until(2.5)
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 20))
    free = shutil.disk_usage(filler.parent).free
    swarm.wait_until(4.5)
    filler.unlink()
    return Fault(["node2"], 2.5, 4.5, [f"{free} bytes free while full"])


def partition(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """{boot0, node0, node1} and {boot1, node2, node3} cannot reach each other from 2.5 to 4.5."""
    hosts = swarm.network.hosts
    halves = [["boot0", "node0", "node1"], ["boot1", "node2", "node3"]]
    swarm.wait_until(2.5)
    swarm.network.switch.partition([[hosts[n].port for n in half] for half in halves])
    swarm.wait_until(4.5)
    swarm.network.switch.heal()
    return Fault(halves[1][1:], 2.5, 4.5, [f"dropped {swarm.network.switch.counters.dropped_partition} frames"])


def _slow_links(swarm: FaultSwarm) -> None:
    for host in swarm.network.hosts.values():
        swarm.network.switch.set_link(host.port, latency=0.025, loss=0.005)  # a path: 50 ms one way, ~1% loss
        host.limit_uplink(100)


def slow_links(swarm: FaultSwarm, rng: random.Random) -> Fault:
    return Fault([], 0.0, 0.0, ["100 ms RTT, 1% loss, 100 Mbit/s on every path, all run"])


def _thin_uplink(swarm: FaultSwarm) -> None:
    swarm.network.hosts["node2"].limit_uplink(10)


def thin_uplink(swarm: FaultSwarm, rng: random.Random) -> Fault:
    return Fault(["node2"], 0.0, 0.0, ["node2 uplink 10 Mbit/s, all run"])


def behind_nat(swarm: FaultSwarm, rng: random.Random) -> Fault:
    """node2 sits behind a masquerading router all run; at round 2 the harness checks that nobody can
    dial it (its listen port, on its private address or its router's), as behind a home router."""
    swarm.wait_until(2.0)
    private, port = _listening(swarm.nodes["node2"].log.read_text(errors="replace"))
    nat, dialer = swarm.network.hosts["node2"], swarm.network.hosts["node0"]
    reached = [addr for addr in (nat.address, private) if _dials(dialer, addr, port)]
    notes = [f"node2 listens on {private}:{port} behind {nat.address}; inbound dials that connected: {reached or 'none'}"]
    return Fault(["node2"], 0.0, 0.0, notes, applied=not reached)


def _listening(log: str) -> tuple[str, int]:
    """The address and port a node's "listening on ['/ip4/A/tcp/P/..." log line names."""
    address, rest = log.split("listening on ['/ip4/", 1)[1].split("/tcp/", 1)
    return address, int(rest.split("/", 1)[0])


def _dials(host, address: str, port: int) -> bool:
    """Whether a TCP connection from `host` to address:port is accepted within 3 s."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), 3)"
    return subprocess.run(host.command(sys.executable, "-c", probe), capture_output=True).returncode == 0


SCENARIOS = [
    Scenario("kill9", "kill -9 at random and inside a checkpoint write, restart", kill_and_restart, rounds=7, fast=True),
    Scenario("signer", "kill -9 the manifest signer at its signing slot", kill_signer),
    Scenario("freeze", "SIGSTOP a node for two rounds, then SIGCONT", freeze),
    Scenario("p2pd", "kill -9 a node's p2pd", kill_p2pd),
    Scenario("chain", "dev chain outage for three rounds", chain_outage, rounds=9),
    Scenario("skew5", "clocks +5 s and -5 s", skew_5s, setup=_skewed_clocks),
    Scenario("skew_round", "a clock one round ahead for two rounds", skew_round),
    Scenario("disk", "data disk full for two rounds", disk_full, setup=_small_disk),
    Scenario("partition", "two halves for two rounds, then healed", partition, peers=4),
    Scenario("netem", "every path 100 ms RTT, 1% loss, 100 Mbit/s", slow_links, setup=_slow_links),
    Scenario("uplink", "a node on a 10 Mbit/s uplink", thin_uplink, setup=_thin_uplink),
    Scenario("nat", "a node behind NAT", behind_nat, nat=frozenset({"node2"})),
]
