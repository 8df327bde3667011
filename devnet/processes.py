"""The demo's processes: bootstraps, nodes (honest or cheating), the Sybil flood, and stopping them.

Each is the real command a deployment would run, started as its own OS
process with its log in its folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in a session of its own together with everything it started.

    The Sybil flood runs ten hivemind DHTs, each a child process with its own p2pd; stopping only
    the parent left those twenty processes running (and flooding) after every demo."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(proc.pid):
            proc.poll()  # reap the leader so that it does not count as alive
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


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
        # A real attacker floods from its own machines; on one box a lower CPU priority keeps most of the
        # attacker's own work off the honest nodes' cores, while their cost of refusing it stays theirs.
        preexec_fn=idle_priority,
        start_new_session=True,  # so that stop_group reaches its DHT processes and p2pds too
    )


def idle_priority() -> None:
    """nice 10 for the Sybils and every process they start (their DHT processes, their p2pds).

    SCHED_IDLE was tried (issue 12) and dropped: the flood's volume is bound by its own latency
    (each Sybil awaits its stores, fetches and pushes in turn), and in the one SCHED_IDLE run with no
    leftover processes around it made 1,750 stores against 630-700 in the other runs, which cost
    the honest nodes more to refuse: their inner loops fell to about 20 of 40 steps, against 25-40
    at nice 10. One run is weak evidence; the demo keeps what it had."""
    os.nice(10)


def start_bootstrap(boot_dir: Path, run_file: Path, env: dict) -> subprocess.Popen:
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
