"""The demo's processes: bootstraps, nodes (honest or cheating), the Sybil flood, and stopping them.

Each is the real command a deployment would run, started as its own OS
process with its log in its folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from node.config import NodeConfig, RunSpec, render_run_file
from node.fsutil import atomic_write


def wait_for_file(path: Path, timeout: float, procs: list[subprocess.Popen]) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process exited before writing {path}")
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def stop_tree(proc: subprocess.Popen) -> None:
    """Stop a process together with every process it started.

    The Sybil flood runs ten hivemind DHTs, each a child process with its own p2pd; stopping only
    the parent left those twenty processes running (and flooding) after every demo."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=15)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    proc.poll()


def start_sybils(sybil_dir: Path, spec: RunSpec, maddrs: list[str], count: int, rounds: int, env: dict) -> subprocess.Popen:
    run_file = sybil_dir / "run.toml"
    atomic_write(run_file, render_run_file(spec, NodeConfig(bootstrap=tuple(maddrs))).encode())
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devnet.sybil",
            "--config",
            str(run_file),
            "--count",
            str(count),
            "--rounds",
            str(rounds),
            "--report",
            str(sybil_dir / "report.json"),
        ],
        stdout=open(sybil_dir / "sybil.log", "wb"),
        stderr=subprocess.STDOUT,
        env=env,
        # A real attacker floods from its own machines; on one box the attacker's own work runs only on
        # otherwise idle CPU, while the honest nodes' cost of refusing it stays theirs.
        preexec_fn=idle_priority,
    )


def idle_priority() -> None:
    """SCHED_IDLE for the Sybils and every process they start (their DHT processes, their p2pds).

    At nice 10 they still took enough of the two cores to cut the honest nodes' deadline-bounded
    inner loops to 25-40 of 40 steps, so the state with Sybils differed from the one without (issue
    12, before and after the round engine alike); at SCHED_IDLE every honest node trained all 40."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: the lowest priority the OS offers
        os.nice(19)


def start_bootstrap(boot_dir: Path, run_file: Path, env: dict, http: str = "") -> subprocess.Popen:
    """`gradswarm bootstrap run`; with `http` (HOST:PORT) it serves /healthz and /metrics there."""
    boot_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "bootstrap",
            "run",
            "--run",
            str(run_file),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--identity",
            str(boot_dir / "p2p.key"),
            "--maddrs-file",
            str(boot_dir / "maddrs.json"),
            *(["--http", http] if http else []),
        ],
        stdout=open(boot_dir / "bootstrap.log", "wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def start_node(config: Path, rounds: int, env: dict, nproc: int = 1, adversary: str = "") -> subprocess.Popen:
    """`gradswarm node run`, or for an adversary the same node with its cheating Worker (devnet/cheater.py)."""
    command = ["devnet.cheater", "--kind", adversary] if adversary else ["node.cli", "node", "run"]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            *command,
            "--config",
            str(config),
            "--rounds",
            str(rounds),
            *(["--nproc", str(nproc)] if nproc > 1 and not adversary else []),
        ],
        stdout=open(config.parent / "node.log", "wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
