"""A real swarm for the fault harness: the demo's dev chain, keys and corpus, with every bootstrap and
node in its own host (hosts.py), so that a scenario can kill, freeze, skew, starve or cut any of them.

The harness plays the operator's supervisor (systemd's Restart=, deploy/): a node that was killed or
exited is started again with the same run file when the scenario says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from devnet.calibrate import calibrate, fit_steps
from devnet.demo import prepare
from devnet.faults.hosts import Host, Network
from node.chain import DevChain
from node.chain.clock import run_schedule
from node.config import NodeConfig, RunSpec, render_run_file
from node.fsutil import atomic_write
from node.round.report import RoundReport, read_reports
from protocol.schedule import OVERLAPPED

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
BOOT_SECONDS = 35.0  # namespaces, two bootstraps, node start-up and DHT join, on 2 cores


@dataclass
class Member:
    """One process the harness runs, and every start of it."""

    name: str
    host: Host
    argv: list[str]
    log: Path
    clock: str = ""  # a libfaketime offset such as "+5s"; "" is the true time
    process: subprocess.Popen | None = None
    starts: list[float] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # return codes of the starts that ended

    def start(self, env: dict[str, str]) -> None:
        if self.clock:
            env = {**env, "LD_PRELOAD": FAKETIME, "FAKETIME": self.clock}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.host.command(*self.argv), stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts.append(time.time())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.process.pid, sig)

    def reap(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.exits.append(self.process.returncode)
        self.process = None

    def children(self, name: str) -> list[psutil.Process]:
        """Its descendant processes called `name` (its p2pd daemons)."""
        if not self.alive():
            return []
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in family if _name(p) == name]


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


class FaultSwarm:
    """`peers` honest nodes and two bootstraps under `out`, each on its own host of `network`."""

    def __init__(self, out: Path, network: Network, peers: int, rounds: int, seed: int, nat: frozenset[str] = frozenset()):
        self.out, self.network, self.rounds, self.seed = out, network, rounds, seed
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.cleanups: list[Callable[[], object]] = []  # undone after the run, last first (mounts)
        round_seconds = 20.0 + 5.0 * max(0, peers - 3)
        calibration = calibrate(RunSpec(), peers)
        self.spec, configs, _, _ = prepare(
            out,
            peers,
            round_seconds,
            [],
            seed,
            fit=lambda spec: fit_steps(spec, OVERLAPPED.train * round_seconds, calibration),
        )
        start_block = self.spec.schedule.start_block + int(BOOT_SECONDS - 20.0)
        self.spec = replace(self.spec, schedule=replace(self.spec.schedule, start_block=start_block))
        self.schedule = run_schedule(self.spec, DevChain(self.spec.chain.path))
        self.bootstraps = [self._bootstrap(f"boot{i}") for i in range(2)]
        self.configs: dict[str, NodeConfig] = {}
        self.nodes = {f"node{i}": self._node(f"node{i}", config, f"node{i}" in nat) for i, config in enumerate(configs)}

    def _bootstrap(self, name: str) -> Member:
        host = self.network.add_host(name)
        folder = self.out / "bootstrap" / name
        folder.mkdir(parents=True, exist_ok=True)
        run_file = folder / "run.toml"
        atomic_write(run_file, render_run_file(self.spec, NodeConfig()).encode())
        argv = [sys.executable, "-m", "node.cli", "bootstrap", "run", "--run", str(run_file)]
        argv += [
            "--listen",
            f"/ip4/{host.address}/tcp/0",
            "--identity",
            str(folder / "p2p.key"),
            "--maddrs-file",
            str(folder / "maddrs.json"),
        ]
        return Member(name, host, argv, folder / "bootstrap.log")

    def _node(self, name: str, config: NodeConfig, nat: bool) -> Member:
        host = self.network.add_host(name, nat=nat)
        listen = f"192.168.{host.address.rsplit('.', 1)[1]}.2" if nat else host.address
        self.configs[name] = replace(config, host=listen, http="")
        run_file = Path(config.data_dir) / "run.toml"
        argv = [sys.executable, "-m", "node.cli", "node", "run", "--config", str(run_file), "--rounds", str(self.rounds)]
        return Member(name, host, argv, Path(config.data_dir) / "node.log")

    def start(self) -> None:
        """Bootstraps first (their addresses go into every run file), then every node."""
        self.network.switch.start()
        for boot in self.bootstraps:
            boot.start(self.env)
        maddrs = []
        for boot in self.bootstraps:
            maddrs += _wait_for_json(self.out / "bootstrap" / boot.name / "maddrs.json", boot)["maddrs"]
        for name, member in self.nodes.items():
            config = replace(self.configs[name], bootstrap=tuple(maddrs))
            atomic_write(Path(config.data_dir) / "run.toml", render_run_file(self.spec, config).encode())
            member.start(self.env)

    def at(self, round_: float) -> float:
        """Wall time of `round_` round lengths after round 0's start (2.5: halfway through round 2)."""
        return self.schedule.genesis + round_ * self.schedule.round_seconds

    def wait_until(self, round_: float) -> None:
        while (delay := self.at(round_) - time.time()) > 0:
            time.sleep(min(delay, 0.5))

    def round_now(self) -> float:
        return (time.time() - self.schedule.genesis) / self.schedule.round_seconds

    def restart(self, name: str, clock: str = "") -> None:
        member = self.nodes[name]
        member.reap()
        member.clock = clock
        member.start(self.env)

    def reports(self, name: str) -> dict[int, RoundReport]:
        return read_reports(Path(self.configs[name].data_dir) / "rounds.jsonl")

    def data_dir(self, name: str) -> Path:
        return Path(self.configs[name].data_dir)

    def finish(self, grace: float = 90.0) -> None:
        """Wait for the nodes to end their last round, then stop everything."""
        deadline = self.at(self.rounds + 2) + grace
        for member in self.nodes.values():
            if member.process is not None:
                try:
                    member.process.wait(max(1.0, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    member.signal(signal.SIGCONT)  # a frozen node cannot stop
                    member.signal(signal.SIGTERM)
                member.reap()
        for boot in self.bootstraps:
            boot.signal(signal.SIGTERM)
            boot.reap()


def _wait_for_json(path: Path, member: Member, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if not member.alive():
            raise RuntimeError(f"{member.name} exited before writing {path}:\n{member.log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")
