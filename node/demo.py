"""`gradswarm demo`: a real swarm on loopback, start to finish, with nothing downloaded.

It plays every role a real deployment has, each as its own OS process: a dev
chain (sqlite file) with one registered, staked hotkey per node, two bootstrap
DHT daemons, and N `gradswarm node run` processes that know each other only
through the DHT. Halfway through it stops the first bootstrap (every node
lists it first), as maintainers' hosts do go down. It then reads the nodes'
round logs and judges the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean

from node.adversary import check_kind as check_adversary
from node.config import (
    ChainSpec,
    DataSpec,
    NodeConfig,
    RunSpec,
    ScheduleSpec,
    render_run_file,
)
from node.fsutil import atomic_write

BOOT_SECONDS = 20.0  # process start, imports, model and corpus load, DHT join: round 0 starts after this
BOOTSTRAPS = 2
VALIDATOR_PERMITS = 2


def _wait_for_file(path: Path, timeout: float, procs: list[subprocess.Popen]) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process exited before writing {path}")
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")


def _read_rounds(path: Path) -> dict[int, dict]:
    rounds: dict[int, dict] = {}
    if not path.exists():
        return rounds
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            report = json.loads(line)
            rounds[int(report["round"])] = report
        except (ValueError, KeyError, TypeError):
            continue  # a line being written right now
    return rounds


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def prepare(out: Path, peers: int, round_seconds: float, adversaries: list[str]) -> tuple[RunSpec, list[NodeConfig], list[str]]:
    """Fresh chain, keys and corpus under `out`; the spec, one node config per node, and the adversaries' hotkeys.

    Honest nodes come first (node0 has the most stake and signs manifests);
    adversaries follow with small stakes: registered, but no validator permit.
    """
    from node.chain import DevChain
    from node.data.sources import open_corpus
    from node.keys import new_hotkey

    for stale in ("chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm", "nodes", "bootstrap", "wallets", "sybils", "summary.json"):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    data = DataSpec()
    corpus = open_corpus(data, out / "corpus")
    chain = DevChain.create(out / "chain.sqlite", block_time=1.0, max_validators=VALIDATOR_PERMITS)
    spec = RunSpec(
        name="demo",
        data=replace(data, digest=corpus.digest),
        chain=ChainSpec(kind="dev", path=str((out / "chain.sqlite").resolve())),
        schedule=ScheduleSpec(start_block=chain.block() + int(BOOT_SECONDS), round_seconds=round_seconds),
    )
    wallets = out / "wallets"
    nodes, cheaters = [], []
    total = peers + len(adversaries)
    for i in range(total):
        kind = adversaries[i - peers] if i >= peers else ""
        # The same identities every time: two demos differ only in what their options change.
        keypair = new_hotkey(f"node{i}", "default", wallets, seed=hashlib.sha256(f"gradswarm-demo/node{i}".encode()).digest())
        chain.register(keypair.ss58_address)
        chain.add_stake(keypair.ss58_address, 10.0 if kind else 1000.0 / (i + 1))  # node0 signs, node1 backs it up
        if kind:
            cheaters.append(keypair.ss58_address)
        nodes.append(NodeConfig(
            data_dir=str((out / "nodes" / f"node{i}").resolve()),
            wallet=f"node{i}",
            wallet_root=str(wallets.resolve()),
            torch_threads=1,
            evaluate=(i == 0),
            corpus_cache=str((out / "corpus").resolve()),
            verify_samples=total - 1 if i < VALIDATOR_PERMITS else 1,  # validators check everyone
            adversary=kind,
        ))
    return spec, nodes, cheaters


def run_demo(
    peers: int, rounds: int, out: Path, round_seconds: float | None = None, late_rounds: int = 0, adversaries: tuple[str, ...] = (),
    bootstraps_down: int = 0, ranks_per_node: int = 1, sybils: int = 0,
) -> int:
    """Run the swarm; with `late_rounds`, the last node only starts once that round has begun;
    `sybils` adds that many unregistered identities flooding the DHT (node/sybil.py, one process);
    `adversaries` adds one cheating node of each named kind; with `bootstraps_down`, every
    bootstrap stops once that round begins (otherwise only the first, halfway); with `ranks_per_node`
    each node runs as that many torchrun ranks (gloo on CPU)."""
    if peers < 2 or rounds < 1 or not 0 <= late_rounds < rounds or not 0 <= bootstraps_down < rounds:
        print("error: the demo needs at least 2 peers, 1 round, and --late-join and --stop-bootstraps below --rounds", file=sys.stderr)
        return 2
    if ranks_per_node < 1:
        print("error: --ranks-per-node must be at least 1", file=sys.stderr)
        return 2
    for kind in adversaries:
        check_adversary(kind)
    total = peers + len(adversaries)
    if round_seconds is None:  # on 2 cores every extra process slows everyone down
        round_seconds = 20.0 + 5.0 * max(0, total - 3)
    started = time.time()
    spec, node_configs, cheaters = prepare(out, peers, round_seconds, list(adversaries))
    configs = [Path(node.data_dir) / "run.toml" for node in node_configs]
    round_zero = started + BOOT_SECONDS  # approximately: the chain's block clock decides
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []  # the nodes
    boots: list[subprocess.Popen] = []
    swarm_of_sybils: list[subprocess.Popen] = []
    stops = _bootstrap_stops(rounds, bootstraps_down)
    stopped: list[dict] = []  # {bootstrap, peer_id, round}: round is the first that ran without it
    try:
        boot_run_file = out / "bootstrap" / "run.toml"
        atomic_write(boot_run_file, render_run_file(spec, NodeConfig()).encode())  # a bootstrap reads the spec only
        for i in range(BOOTSTRAPS):
            boots.append(_start_bootstrap(out / "bootstrap" / f"boot{i}", boot_run_file, env))
        infos = [_wait_for_file(out / "bootstrap" / f"boot{i}" / "maddrs.json", 60, boots) for i in range(BOOTSTRAPS)]
        maddrs = [addr for info in infos for addr in info["maddrs"]]
        for node, path in zip(node_configs, configs):
            atomic_write(path, render_run_file(spec, replace(node, bootstrap=tuple(maddrs))).encode())
        if sybils:  # first, so that their start-up (a DHT process and a p2pd each) is over before round 0
            swarm_of_sybils.append(_start_sybils(out / "sybils", spec, maddrs, sybils, rounds, env))
            print(f"demo: plus {sybils} unregistered Sybil identities flooding the DHT (log: {out}/sybils/sybil.log)")
        on_time = configs[:-1] if late_rounds else configs
        procs += [_start_node(path, rounds, env, ranks_per_node) for path in on_time]
        print(f"demo: {peers} nodes, {rounds} rounds of {round_seconds:.0f} s, logs under {out}/nodes/*/node.log")
        if adversaries:
            print(f"demo: plus adversaries {', '.join(adversaries)} (nodes {peers}..{total - 1})")
        if late_rounds:
            print(f"demo: {configs[-1].parent.name} joins late, in round {late_rounds}")
        print(f"{'round':>5} {'train_loss':>10} {'eval_loss':>9} {'manifest':>8} {'bytes_sent':>10}")
        deadline = round_zero + (rounds + 2) * round_seconds + 60
        printed = 0
        while printed < rounds and time.time() < deadline:
            if late_rounds and len(procs) == total - 1 and time.time() >= round_zero + late_rounds * round_seconds:
                procs.append(_start_node(configs[-1], rounds, env, ranks_per_node))
            logs = [_read_rounds(path.parent / "rounds.jsonl") for path in on_time]
            while printed < rounds and all(printed in log for log in logs):
                _print_round(printed, [log[printed] for log in logs])
                printed += 1
            for due in sorted(r for r in stops if r <= printed < rounds):
                for i in stops.pop(due):
                    _stop([boots[i]])
                    stopped.append({"bootstrap": f"boot{i}", "peer_id": infos[i]["peer_id"], "round": printed})
                    print(f"demo: stopped bootstrap boot{i} as round {printed} began", flush=True)
            if all(p.poll() is not None for p in procs) and printed < rounds:
                break
            time.sleep(0.5)
        for p in procs:
            try:
                p.wait(timeout=max(5.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        _stop(procs + boots + swarm_of_sybils)
    codes = [p.returncode for p in procs]
    return judge(
        spec, configs, total, rounds, out, time.time() - started, codes, late=bool(late_rounds), cheaters=cheaters,
        bootstraps_stopped=stopped, ranks_per_node=ranks_per_node, sybil_report=out / "sybils" / "report.json" if sybils else None,
    )


def _start_sybils(sybil_dir: Path, spec: RunSpec, maddrs: list[str], count: int, rounds: int, env: dict) -> subprocess.Popen:
    run_file = sybil_dir / "run.toml"
    atomic_write(run_file, render_run_file(spec, NodeConfig(bootstrap=tuple(maddrs))).encode())
    return subprocess.Popen(
        [sys.executable, "-m", "node.sybil", "--config", str(run_file), "--count", str(count), "--rounds", str(rounds),
         "--report", str(sybil_dir / "report.json")],
        stdout=open(sybil_dir / "sybil.log", "wb"), stderr=subprocess.STDOUT, env=env,
        # A real attacker floods from its own machines; on one box a lower CPU priority keeps most of the
        # attacker's own work off the honest nodes' cores, while their cost of refusing it stays theirs.
        preexec_fn=lambda: os.nice(10),
    )


def _bootstrap_stops(rounds: int, all_down: int) -> dict[int, list[int]]:
    """round -> the bootstraps to stop when it begins: all at `all_down`, else the first halfway."""
    if all_down:
        return {all_down: list(range(BOOTSTRAPS))}
    return {rounds // 2: [0]} if rounds >= 2 else {}


def _start_bootstrap(boot_dir: Path, run_file: Path, env: dict) -> subprocess.Popen:
    boot_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "bootstrap", "run", "--run", str(run_file), "--listen", "/ip4/127.0.0.1/tcp/0",
         "--identity", str(boot_dir / "p2p.key"), "--maddrs-file", str(boot_dir / "maddrs.json")],
        stdout=open(boot_dir / "bootstrap.log", "wb"), stderr=subprocess.STDOUT, env=env,
    )


def _start_node(config: Path, rounds: int, env: dict, nproc: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "run", "--config", str(config), "--rounds", str(rounds),
         *(["--nproc", str(nproc)] if nproc > 1 else [])],
        stdout=open(config.parent / "node.log", "wb"), stderr=subprocess.STDOUT, env=env,
    )


def _print_round(r: int, row: list[dict]) -> None:
    losses = [x["train_loss"] for x in row if "train_loss" in x]
    sent = sum(x["upload_payload_bytes"] + x["upload_state_bytes"] for x in row)
    print(
        f"{r:>5} {mean(losses) if losses else float('nan'):>10.4f} "
        f"{row[0].get('eval_loss', float('nan')):>9.4f} {row[0]['manifest_entries']:>8} {sent:>10}",
        flush=True,
    )


def verdict_counts(logs: list[dict[int, dict]]) -> dict[str, dict[str, int]]:
    """Per subject, the verdicts recorded in the given nodes' round logs."""
    counts: dict[str, dict[str, int]] = {}
    for log in logs:
        for report in log.values():
            for _round, subject, verdict in report.get("verdicts", []):
                counts.setdefault(subject, {"pass": 0, "fail": 0})[verdict] += 1
    return counts


def excluded_from(hotkey: str, log: dict[int, dict], rounds: int) -> int | None:
    """The first round from which `hotkey` was in no manifest any more (None: still in the last one)."""
    last_in = max((r for r, report in log.items() if hotkey in report.get("manifest_hotkeys", [])), default=-1)
    return last_in + 1 if last_in + 1 < rounds else None


def verify_cost(log: dict[int, dict]) -> float | None:
    """Wall seconds a node spent verifying per second it spent training (both share its cores);
    None for a node that never trained (the copy adversary)."""
    train = sum(x.get("train_seconds", 0.0) for x in log.values())
    return round(sum(x.get("verify_seconds", 0.0) for x in log.values()) / train, 3) if train > 1.0 else None


def sybil_summary(logs: list[dict[int, dict]], report_path: Path) -> dict:
    """What the honest nodes took from the Sybils (should be nothing), from their round reports.

    Accepted: signed records from unregistered hotkeys that got past the DHT
    validators into a node's logic. Aggregated: (round, Sybil hotkey) pairs
    named in any manifest a node logged. Rejected and refused: what the DHT
    validators and the stream handlers turned away (cumulative per node);
    pushes taken: forged records an honest node's inbox took from a Sybil.
    """
    report = json.loads(report_path.read_text()) if report_path.exists() else {"hotkeys": []}
    sybils = set(report["hotkeys"])
    last = [log[max(log)] for log in logs if log]
    return {
        "sybils": len(sybils),
        "sybil_records_accepted": sum(x.get("unregistered_records", 0) for x in last),
        "sybil_contributions_aggregated": len({(r, h) for log in logs for r, x in log.items() for h in x.get("manifest_hotkeys", []) if h in sybils}),
        "sybil_records_rejected_by_validators": sum(x.get("dht_rejections", {}).get("unregistered", 0) for x in last),
        "sybil_streams_refused": sum(x.get("refused_streams", 0) for x in last),
        "sybil_fetches_served": report.get("fetches_served", 0),
        "sybil_pushes_taken": report.get("pushes_taken", 0),
        "sybil_report": report,
    }


def judge(
    spec: RunSpec, configs: list[Path], peers: int, rounds: int, out: Path, wall: float, codes: list, late: bool, cheaters: list[str],
    bootstraps_stopped: list[dict] | None = None, ranks_per_node: int = 1, sybil_report: Path | None = None,
) -> int:
    """Write summary.json; non-zero exit when the swarm did not do its job.

    A late joiner is judged on what it can do: be in the swarm at the end with the same state.
    """
    from node.trainer import params
    from node.trainer.model import build_model

    logs = [_read_rounds(p.parent / "rounds.jsonl") for p in configs]
    on_time = logs[:-1] if late else logs
    completed = sum(1 for r in range(rounds) if all(r in log for log in on_time) and (rounds - 1) in logs[-1])
    final = {log[max(log)]["hotkey"]: log[max(log)]["state_hash"] for log in logs if log}
    payload_uploads = [log[r]["upload_payload_bytes"] for log in logs for r in log]
    payload_sizes = [log[r]["payload_bytes"] for log in logs for r in log if "payload_bytes" in log[r]]
    state_uploads = [log[r]["upload_state_bytes"] for log in logs for r in log]
    dense = 4 * params.numel(build_model(spec.model.preset, spec.model.seed))
    summary = {
        "peers": peers,
        "rounds_completed": completed,
        "eval_loss": [logs[0][r].get("eval_loss") for r in sorted(logs[0])] if logs else [],
        "final_state_hashes": final,
        "upload_bytes_per_peer_round": mean(payload_uploads) if payload_uploads else 0.0,
        "payload_bytes_per_peer_round": mean(payload_sizes) if payload_sizes else 0.0,
        "state_sync_bytes_per_peer_round": mean(state_uploads) if state_uploads else 0.0,
        "dense_fp32_bytes": dense,
        "codec": spec.codec.name,
        "rounds_with_manifest": sum(1 for r in logs[0].values() if r["manifest_entries"] >= 2) if logs else 0,
        "state_syncs": sum(1 for log in logs for r in log if log[r].get("resynced")),
        # Only validators' verdicts count (a cheater can sign any verdict it likes about anyone);
        # every node's verdicts, cheaters' included, are in verdicts_all.
        "verdicts": verdict_counts(logs[:VALIDATOR_PERMITS]),
        "verdicts_all": verdict_counts(logs),
        "adversaries": cheaters,
        "excluded_from_round": {h: excluded_from(h, logs[0] if logs else {}, rounds) for h in cheaters},
        "verify_cost": {log[min(log)]["hotkey"]: verify_cost(log) for log in logs if log},
        "node_exit_codes": codes,
        "bootstraps": BOOTSTRAPS,
        "bootstraps_stopped": bootstraps_stopped or [],  # [{bootstrap, peer_id, round}]: round is the first without it
        "wall_seconds": round(wall, 1),
    }
    if ranks_per_node > 1:  # every rank of every node wrote the state hash of the weights it holds at the end
        ranks = {p.parent.name: sorted(json.loads(f.read_text())["state_hash"] for f in p.parent.glob("ranks/rank*.json")) for p in configs}
        summary["ranks_per_node"] = ranks_per_node
        summary["rank_state_hashes"] = ranks
        summary["rank_state_hashes_agree"] = all(len(h) == ranks_per_node for h in ranks.values()) and {
            h for hs in ranks.values() for h in hs} == set(final.values())
    # Records some node read only because a peer pushed them: the DHT alone would have lost them.
    summary["records_only_pushed"] = sum(log[max(log)].get("records_only_pushed", 0) for log in logs if log)
    summary["peak_rss_bytes"] = {log[min(log)]["hotkey"]: max(x.get("peak_rss_bytes", 0) for x in log.values()) for log in logs if log}
    if sybil_report is not None:
        summary.update(sybil_summary(logs, sybil_report))
    atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
    problems = []
    if sybil_report is not None and (summary["sybil_records_accepted"] or summary["sybil_contributions_aggregated"] or summary["sybil_fetches_served"]
                                       or summary["sybil_pushes_taken"]):
        problems.append("records, contributions, pushes or fetches of unregistered Sybils got through")
    if completed < rounds:
        problems.append(f"only {completed}/{rounds} rounds completed by every node")
    if len(set(final.values())) != 1 or len(final) != peers:
        problems.append("final state hashes differ between nodes")
    if summary["rounds_with_manifest"] < rounds / 2:
        problems.append(f"only {summary['rounds_with_manifest']}/{rounds} rounds merged contributions from 2+ nodes")
    if any(c != 0 for c in codes):
        problems.append(f"node exit codes {codes}")
    if summary.get("rank_state_hashes_agree") is False:
        problems.append("the ranks of the nodes do not all hold the final state")
    evals = [e for e in summary["eval_loss"] if e is not None]
    print(f"summary: {out / 'summary.json'}")
    if evals:
        print(f"eval loss {evals[0]:.4f} -> {evals[-1]:.4f} ({evals[-1] / evals[0]:.2f}x); "
              f"upload {summary['upload_bytes_per_peer_round']:.0f} B/peer/round vs dense fp32 {dense} B; "
              f"{summary['wall_seconds']} s")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0
