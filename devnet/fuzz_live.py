"""A live fuzz: three honest nodes train on loopback while a hostile registered peer throws messages at them.

    python -m devnet.fuzz_live --messages 100000 --seed 1
    python -m devnet.fuzz_live --control 69 --seed 1      # the same swarm, 69 rounds, no attacker

The swarm is the demo's (devnet.demo.prepare: a dev chain, two bootstraps,
three `gradswarm node run` processes). The hostile peer (devnet/hostile.py)
gets a registered, staked hotkey on the same chain, commits its peer id as a
node does, and sends `--messages` messages cycling over every handler and
record type, from the round after every node has reported its first one. The
nodes run until it is done and every node has finished AFTER_ROUNDS more
rounds; then the run passes if every honest node is still alive, every round
since the attack began has a manifest that merged all honest contributions and
left every node in sync with equal state hashes, no node's memory trended up
(the median RSS of its later half of rounds is at most RSS_GROWTH_LIMIT above
that of its first half: bounded means it does not grow with the messages
sent; its peak, which transient replies and the daemon's buffers make jumpy,
is recorded beside it), no node's log holds a traceback, and after the last message every node still served its
payload to the hostile peer's honest fetch. It writes (or updates, per seed)
benchmarks/results/fuzz_live.json and exits 1 when the run failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from devnet.demo import prepare
from devnet.processes import idle_priority, start_bootstrap, start_node, stop, stop_tree, wait_for_file
from node.config import NodeConfig, RunSpec, render_run_file
from node.fsutil import atomic_write
from node.round.report import RoundReport, read_reports

PEERS = 3
ROUND_SECONDS = 20.0
INNER_STEPS = 20  # a third of the train window on 2 cores: the CPU left over is the hostile peer's
MAX_ROUNDS = 200  # the nodes are stopped once the hostile peer is done; this only bounds a run gone wrong
AFTER_ROUNDS = 2  # rounds every node completes after the last hostile message
BOOT_ROUNDS = 8  # rounds' time the nodes get to report their first round
RSS_GROWTH_LIMIT = 256 << 20
HOSTILE_STAKE = 10.0  # registered and staked, but below the honest nodes: no validator permit
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fuzz_live.json"


@dataclass
class NodeFigures:
    name: str
    alive: bool  # still running when the run ended
    rounds: int  # round reports written
    rss_first_half_mib: float  # median RSS of the node's process tree at the end of its first half of rounds
    rss_second_half_mib: float  # the same over its later half
    rss_growth_mib: float  # second half minus first half
    peak_rss_mib: float  # the largest peak of any round
    tracebacks: int  # "Traceback" lines in its log
    # least-squares slope of RSS over the later half of rounds: the halves' medians also hold the
    # warm-up (a node's RSS climbs for its first ~25 rounds, attacked or not), the slope does not
    rss_trend_mib_per_round: float = 0.0


@dataclass
class FuzzResult:
    seed: int
    messages: int
    hostile_cpu: str = "idle"  # "idle": the hostile peer at SCHED_IDLE; "shared": at normal priority beside the nodes
    wall_seconds: float = 0.0
    first_round: int = 0  # the first round that began after the attack did: the rounds judged start here
    rounds_checked: int = 0  # rounds from first_round that every honest node reported
    rounds_merged: int = 0  # of those, rounds with a manifest of every honest node, all in sync, equal hashes
    final_state_hashes: list[str] = field(default_factory=list)
    nodes: list[NodeFigures] = field(default_factory=list)
    hostile: dict = field(default_factory=dict)  # its HostileReport
    failures: list[str] = field(default_factory=list)
    passed: bool = False


def enlist_hostile(folder: Path, spec: RunSpec, wallets: Path, bootstrap: list[str], seed: bytes) -> tuple[Path, str]:
    """Register and stake a hostile hotkey on the run's dev chain; its run file (spec, wallet, bootstraps) and hotkey."""
    from node.chain import DevChain
    from node.keys import new_hotkey

    keypair = new_hotkey("hostile", "default", wallets, seed=seed, overwrite=True)
    chain = DevChain(spec.chain.path)
    chain.register(keypair.ss58_address)
    chain.add_stake(keypair.ss58_address, HOSTILE_STAKE)
    config = folder / "run.toml"
    node = NodeConfig(data_dir=str(folder), wallet="hostile", wallet_root=str(wallets), bootstrap=tuple(bootstrap))
    atomic_write(config, render_run_file(spec, node).encode())
    return config, keypair.ss58_address


def start_hostile(
    config: Path, messages: int, seed: int, targets: int, report: Path, env: dict | None = None, shared_cpu: bool = False
) -> subprocess.Popen:
    """`python -m devnet.hostile`, its output beside its run file. A real attacker sends from its own machine:
    unless `shared_cpu`, its own work runs at SCHED_IDLE (as the Sybil flood's does), so what the honest
    nodes lose is what refusing its messages costs them, not the cores it takes (on 2 shared cores, at
    normal priority, 2 of 3 contributions missed their deadline from round 15 on: seed 1)."""
    command = [sys.executable, "-m", "devnet.hostile", "--config", str(config), "--messages", str(messages)]
    command += ["--seed", str(seed), "--targets", str(targets), "--report", str(report)]
    with open(config.parent / "hostile.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=None if shared_cpu else idle_priority)


def tracebacks(log: Path) -> int:
    return log.read_text(errors="replace").count("Traceback") if log.exists() else 0


def node_figures(name: str, alive: bool, log: dict[int, RoundReport], node_log: Path) -> NodeFigures:
    mib = 1 << 20
    ordered = [log[r] for r in sorted(log)]
    half = len(ordered) // 2
    first = statistics.median([x.rss_bytes for x in ordered[:half]] or [0]) / mib
    second = statistics.median([x.rss_bytes for x in ordered[half:]] or [0]) / mib
    peak = max((x.peak_rss_bytes for x in ordered), default=0) / mib
    later = [x.rss_bytes / mib for x in ordered[half:]]
    trend = statistics.linear_regression(range(len(later)), later).slope if len(later) >= 2 else 0.0
    return NodeFigures(
        name,
        alive,
        len(ordered),
        round(first, 1),
        round(second, 1),
        round(second - first, 1),
        round(peak, 1),
        tracebacks(node_log),
        round(trend, 2),
    )


def judge(result: FuzzResult, logs: list[dict[int, RoundReport]]) -> None:
    """Fill the round figures and the failures from the nodes' round logs and figures."""
    common = sorted(r for r in set.intersection(*(set(log) for log in logs)) if r >= result.first_round)
    result.rounds_checked = len(common)
    for r in common:
        row = [log[r] for log in logs]
        hashes = {x.state_hash for x in row}
        if all(x.manifest_entries == PEERS and x.in_sync for x in row) and len(hashes) == 1:
            result.rounds_merged += 1
        else:
            result.failures.append(f"round {r}: entries {[x.manifest_entries for x in row]}, in sync {[x.in_sync for x in row]}")
    result.final_state_hashes = [logs[i][common[-1]].state_hash for i in range(len(logs))] if common else []
    for node in result.nodes:
        if not node.alive:
            result.failures.append(f"{node.name} died")
        if node.rss_growth_mib * (1 << 20) > RSS_GROWTH_LIMIT:
            result.failures.append(f"{node.name}: median RSS grew by {node.rss_growth_mib} MiB from its first half of rounds to its second")
        if node.tracebacks:
            result.failures.append(f"{node.name}: {node.tracebacks} tracebacks in its log")
    if result.rounds_checked <= AFTER_ROUNDS:
        result.failures.append(f"only {result.rounds_checked} rounds ran")
    if result.hostile.get("messages", 0) < result.messages:
        result.failures.append(f"the hostile peer sent {result.hostile.get('messages', 0)} of {result.messages} messages")
    if result.messages and result.hostile.get("honest_fetches_after") != PEERS:
        result.failures.append(f"{result.hostile.get('honest_fetches_after')} of {PEERS} nodes served an honest fetch afterwards")
    result.passed = not result.failures


def swarm_running(configs: list[Path], procs: list[subprocess.Popen]) -> int:
    """Wait until every node has reported a round; the latest round reported. The attack starts on a
    swarm that runs: booting under it is another experiment (round 0 is often sat out anyway)."""
    deadline = time.time() + BOOT_ROUNDS * ROUND_SECONDS
    while time.time() < deadline and all(p.poll() is None for p in procs):
        logs = [read_reports(path.parent / "rounds.jsonl") for path in configs]
        if all(logs):
            return max(max(log) for log in logs)
        time.sleep(1.0)
    raise RuntimeError("the swarm did not report its first round")


def attack(out: Path, spec: RunSpec, maddrs: list[str], messages: int, seed: int, env: dict, shared_cpu: bool) -> subprocess.Popen:
    """Enlist the hostile peer on the run's chain and start it against the swarm."""
    key_seed = hashlib.sha256(f"gradswarm-hostile/{seed}".encode()).digest()
    config, _ = enlist_hostile(out / "hostile", spec, (out / "wallets").resolve(), maddrs, key_seed)
    report = out / "hostile" / "report.json"
    report.unlink(missing_ok=True)
    print(f"fuzz_live: {PEERS} nodes, rounds of {ROUND_SECONDS:.0f} s, H = {INNER_STEPS}; {messages} hostile messages, seed {seed}")
    return start_hostile(config, messages, seed, PEERS, report, env, shared_cpu)


def wait_for_round(configs: list[Path], procs: list[subprocess.Popen], target: int, seconds: float) -> None:
    """Until every node has reported round `target`, a node has exited, or `seconds` have passed."""
    deadline = time.time() + seconds
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if all(target in read_reports(path.parent / "rounds.jsonl") for path in configs):
            return
        time.sleep(1.0)


def run_fuzz(messages: int, seed: int, out: Path, shared_cpu: bool = False, control_rounds: int = 0) -> FuzzResult:
    """With `control_rounds` (and no messages), the same swarm runs that many rounds with no attacker:
    the baseline that the attacked runs' rounds and memory are read against."""
    started = time.time()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    pin = lambda spec: replace(spec, train=replace(spec.train, inner_steps=INNER_STEPS))  # noqa: E731
    spec, node_configs, _, _ = prepare(out, PEERS, ROUND_SECONDS, [], fit=pin)
    configs = [Path(node.data_dir) / "run.toml" for node in node_configs]
    procs: list[subprocess.Popen] = []
    boots: list[subprocess.Popen] = []
    hostile: subprocess.Popen | None = None
    result = FuzzResult(seed=seed, messages=messages, hostile_cpu="none" if control_rounds else "shared" if shared_cpu else "idle")
    try:
        boot_file = out / "bootstrap" / "run.toml"
        atomic_write(boot_file, render_run_file(spec, NodeConfig()).encode())
        boots = [start_bootstrap(out / "bootstrap" / f"boot{i}", boot_file, env) for i in range(2)]
        maddrs = [a for i in range(2) for a in wait_for_file(out / "bootstrap" / f"boot{i}" / "maddrs.json", 60, boots)["maddrs"]]
        for node, path in zip(node_configs, configs, strict=True):
            atomic_write(path, render_run_file(spec, replace(node, bootstrap=tuple(maddrs))).encode())
        procs = [start_node(path, MAX_ROUNDS, env) for path in configs]
        result.first_round = swarm_running(configs, procs) + 1
        if control_rounds:
            print(f"fuzz_live: {PEERS} nodes, rounds of {ROUND_SECONDS:.0f} s, H = {INNER_STEPS}; control, {control_rounds} rounds")
            wait_for_round(configs, procs, result.first_round + control_rounds - 1, (control_rounds + 4) * ROUND_SECONDS)
        else:
            hostile = attack(out, spec, maddrs, messages, seed, env, shared_cpu)
            while hostile.poll() is None and all(p.poll() is None for p in procs):
                time.sleep(1.0)
            logs = [read_reports(path.parent / "rounds.jsonl") for path in configs]
            target = max((max(log, default=-1) for log in logs), default=-1) + AFTER_ROUNDS
            wait_for_round(configs, procs, target, (AFTER_ROUNDS + 2) * ROUND_SECONDS)
        alive = [p.poll() is None for p in procs]
        report = out / "hostile" / "report.json"
        result.hostile = json.loads(report.read_text()) if report.exists() else {}
    finally:
        stop(procs + boots)
        if hostile is not None:
            stop_tree(hostile)
    logs = [read_reports(path.parent / "rounds.jsonl") for path in configs]
    result.nodes = [node_figures(p.parent.name, ok, log, p.parent / "node.log") for p, ok, log in zip(configs, alive, logs, strict=True)]
    judge(result, logs)
    result.wall_seconds = round(time.time() - started, 1)
    return result


def save(result: FuzzResult, path: Path = RESULTS) -> None:
    """Keep one entry per seed and hostile CPU share in the results file."""
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    runs[f"{result.seed}-{result.hostile_cpu}"] = asdict(result)
    atomic_write(
        path,
        json.dumps(
            {"command": "python -m devnet.fuzz_live --messages N --seed S (or --control ROUNDS: no attacker)", "runs": runs}, indent=2
        ).encode(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="fuzz-out", help="the swarm's folder (chain, keys, node logs)")
    parser.add_argument("--shared-cpu", action="store_true", help="the hostile peer at normal priority, on the nodes' cores")
    parser.add_argument("--control", type=int, default=0, metavar="ROUNDS", help="no attacker: the same swarm for ROUNDS rounds")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the swarm is stopped, not orphaned
    messages = 0 if args.control else args.messages
    result = run_fuzz(messages, args.seed, Path(args.out).resolve(), args.shared_cpu, args.control)
    save(result)
    h = result.hostile
    print(
        f"fuzz_live: {h.get('messages', 0)} messages at {h.get('messages_per_second', 0)}/s, {result.rounds_merged} of {result.rounds_checked} rounds merged"
    )
    for n in result.nodes:
        print(
            f"  {n.name}: alive {n.alive}, median RSS {n.rss_first_half_mib} -> {n.rss_second_half_mib} MiB (peak {n.peak_rss_mib}),"
            f" {n.rss_trend_mib_per_round:+} MiB a round over the later half,"
            f" {n.tracebacks} tracebacks"
        )
    print("fuzz_live: " + ("passed" if result.passed else "FAILED: " + "; ".join(result.failures)))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
