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
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from devnet.adversaries import check_kind as check_adversary
from devnet.calibrate import calibrate, fit_steps
from devnet.dataset import dataset_run
from devnet.judge import BOOTSTRAPS, judge, print_round
from devnet.live import LiveTable, free_port, page_url
from devnet.processes import start_bootstrap, start_node, start_sybils, stop, stop_tree, wait_for_file
from devnet.startup import PHASES, StartUp
from node.config import (
    ChainSpec,
    DataSpec,
    ModelSpec,
    NodeConfig,
    RunSpec,
    ScheduleSpec,
    render_run_file,
)
from node.fsutil import atomic_write
from node.round.report import read_reports
from protocol.schedule import OVERLAPPED, SEQUENTIAL


def boot_seconds(processes: int) -> float:
    """Process start, imports, model and corpus load, DHT join: round 0 starts after this. On 2 cores
    each process beyond three adds about 3 s (9 processes took 33 s; a node that starts round 0 late
    sits it out, node/round/engine.py)."""
    return 20.0 + 3.0 * max(0, processes - 3)


def key_seed(i: int, seed: int | None = None) -> bytes:
    """The 32-byte seed of node i's hotkey: the same identities every time for the same `seed`
    (None: the demo's usual ones), so two demos differ only in what their options change."""
    name = f"gradswarm-demo/node{i}" if seed is None else f"gradswarm-demo/{seed}/node{i}"
    return hashlib.sha256(name.encode()).digest()


def prepare(
    out: Path,
    peers: int,
    round_seconds: float,
    adversaries: list[str],
    seed: int | None = None,
    overlap: bool = True,
    fit: Callable[[RunSpec], RunSpec] = lambda spec: spec,
    data: str = "stdlib",
    phase: Callable[[str], None] = lambda name: None,
) -> tuple[RunSpec, list[NodeConfig], list[str], list[str]]:
    """Fresh chain, keys and corpus under `out`: the spec (`fit` sets its inner steps), one node config
    per node, the adversaries' hotkeys, and each node's adversary kind ("" for honest nodes). Each
    node serves its status page on a free loopback port; `phase` hears which part of the work begins.

    Honest nodes come first, each a validator (node0 has the most stake and signs manifests);
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

    phase(PHASES[1])
    model, data_spec = dataset_run(out / "data", data) if data != "stdlib" else (ModelSpec(), DataSpec())
    corpus = open_corpus(RunSpec(model=model, data=data_spec), out / "corpus")
    phase(PHASES[2])
    chain = DevChain.create(out / "chain.sqlite", block_time=1.0, max_validators=peers)
    spec = fit(
        RunSpec(
            name="demo",
            model=model,
            data=replace(data_spec, digest=corpus.digest),
            chain=ChainSpec(kind="dev", path=str((out / "chain.sqlite").resolve())),
            schedule=ScheduleSpec(
                start_block=chain.block() + int(boot_seconds(peers + len(adversaries))), round_seconds=round_seconds, overlap=overlap
            ),
        )
    )
    wallets = out / "wallets"
    nodes, cheaters, kinds = [], [], []
    total = peers + len(adversaries)
    for i in range(total):
        kind = adversaries[i - peers] if i >= peers else ""
        keypair = new_hotkey(f"node{i}", "default", wallets, seed=key_seed(i, seed))
        chain.register(keypair.ss58_address)
        chain.add_stake(keypair.ss58_address, 10.0 if kind else 1000.0 / (i + 1))  # node0 signs, node1 backs it up
        if kind:
            cheaters.append(keypair.ss58_address)
        kinds.append(kind)
        nodes.append(
            NodeConfig(
                data_dir=str((out / "nodes" / f"node{i}").resolve()),
                wallet=f"node{i}",
                wallet_root=str(wallets.resolve()),
                torch_threads=1,
                evaluate=(i == 0),
                corpus_cache=str((out / "corpus").resolve()),
                http=f"127.0.0.1:{free_port()}",
            )
        )
    return spec, nodes, cheaters, kinds


def run_demo(
    peers: int,
    rounds: int,
    out: Path,
    round_seconds: float | None = None,
    late_rounds: int = 0,
    adversaries: tuple[str, ...] = (),
    bootstraps_down: int = 0,
    ranks_per_node: int = 1,
    sybils: int = 0,
    seed: int | None = None,
    overlap: bool = True,
    inner_steps: int | None = None,
    data: str = "stdlib",
) -> int:
    """Run the swarm; with `late_rounds`, the last node only starts once that round has begun;
    `sybils` adds that many unregistered identities flooding the DHT (devnet/sybil.py, one process);
    `adversaries` adds one cheating node of each named kind; with `bootstraps_down`, every
    bootstrap stops once that round begins (otherwise only the first, halfway); with `ranks_per_node`
    each node runs as that many torchrun ranks (gloo on CPU); `seed` seeds the nodes' identities
    (and so the page assignment; None: the usual ones); `overlap` false trains half of each round
    and exchanges in the other half; `inner_steps` pins H (default: as many as fill the train window
    on this machine, devnet/calibrate.py); `data` "jsonl" or "parquet" trains on such a dataset with a BPE tokenizer
    trained on the spot (devnet/dataset.py) instead of the byte-level stdlib."""
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
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []  # the nodes
    boots: list[subprocess.Popen] = []
    swarm_of_sybils: list[subprocess.Popen] = []
    stops = _bootstrap_stops(rounds, bootstraps_down)
    stopped: list[dict] = []  # {bootstrap, peer_id, round}: round is the first that ran without it
    try:
        with StartUp() as startup:
            startup.phase(PHASES[0])
            calibration = calibrate(RunSpec(), total * ranks_per_node)
            train_seconds = (OVERLAPPED if overlap else SEQUENTIAL).train * round_seconds

            def fit(spec: RunSpec) -> RunSpec:
                if inner_steps is not None:
                    return replace(spec, train=replace(spec.train, inner_steps=inner_steps))
                return fit_steps(spec, train_seconds, calibration)

            spec, node_configs, cheaters, kinds = prepare(
                out, peers, round_seconds, list(adversaries), seed, overlap, fit, data, startup.phase
            )
            configs = [Path(node.data_dir) / "run.toml" for node in node_configs]
            pages = {path.parent.name: page_url(node.http) for node, path in zip(node_configs, configs, strict=True)}
            round_zero = _round_zero(spec)
            startup.phase(PHASES[3])
            boot_run_file = out / "bootstrap" / "run.toml"
            atomic_write(boot_run_file, render_run_file(spec, NodeConfig()).encode())  # a bootstrap reads the spec only
            boot_http = [f"127.0.0.1:{free_port()}" for _ in range(BOOTSTRAPS)]
            for i in range(BOOTSTRAPS):
                boots.append(start_bootstrap(out / "bootstrap" / f"boot{i}", boot_run_file, env, boot_http[i]))
            infos = [wait_for_file(out / "bootstrap" / f"boot{i}" / "maddrs.json", 60, boots) for i in range(BOOTSTRAPS)]
            maddrs = [addr for info in infos for addr in info["maddrs"]]
            startup.phase(PHASES[4])
            for node, path in zip(node_configs, configs, strict=True):
                atomic_write(path, render_run_file(spec, replace(node, bootstrap=tuple(maddrs))).encode())
            if sybils:  # first, so that their start-up (a DHT process and a p2pd each) is over before round 0
                swarm_of_sybils.append(start_sybils(out / "sybils", spec, maddrs, sybils, rounds, env))
                print(f"demo: plus {sybils} unregistered Sybil identities flooding the DHT (log: {out}/sybils/sybil.log)")
            on_time = configs[:-1] if late_rounds else configs
            procs += [
                start_node(path, rounds, env, ranks_per_node, kind) for path, kind in zip(on_time, kinds, strict=False)
            ]  # a late joiner starts later
            print(
                f"demo: {peers} nodes, {rounds} rounds of {round_seconds:.0f} s ({'overlapped' if overlap else 'sequential'}), "
                f"H = {spec.train.inner_steps} inner steps on {spec.data.pages_per_round} pages "
                f"(one step alone: {calibration.step_seconds_alone * 1000:.0f} ms), "
                f"seed {'default' if seed is None else seed}, logs under {out}/nodes/*/node.log"
            )
            if adversaries:
                print(f"demo: plus adversaries {', '.join(adversaries)} (nodes {peers}..{total - 1})")
            if late_rounds:
                print(f"demo: {configs[-1].parent.name} joins late, in round {late_rounds}")
            for name, url in pages.items():
                print(f"demo: {name} status page {url} (JSON {url}status, Prometheus {url}metrics)")
            print(f"demo: bootstrap metrics {', '.join(f'http://{http}/metrics' for http in boot_http)}")
            startup.countdown(round_zero, lambda: any(p.poll() is None for p in procs))
        deadline = round_zero + (rounds + 2) * round_seconds + 60
        printed = 0
        logs_of = {name: (url, path.parent / "rounds.jsonl") for (name, url), path in zip(pages.items(), configs, strict=True)}
        with LiveTable(logs_of, title=f"{peers} nodes, {rounds} rounds of {round_seconds:.0f} s"):
            print(f"{'round':>5} {'train_loss':>10} {'eval_loss':>9} {'manifest':>8} {'bytes_sent':>10}")
            while printed < rounds and time.time() < deadline:
                # as before the exact round 0 was known: a few seconds early, so that it is up in round `late_rounds`
                if late_rounds and len(procs) == total - 1 and time.time() >= started + boot_seconds(total) + late_rounds * round_seconds:
                    procs.append(start_node(configs[-1], rounds, env, ranks_per_node, kinds[-1]))
                logs = [read_reports(path.parent / "rounds.jsonl") for path in on_time]
                while printed < rounds and all(printed in log for log in logs):
                    print_round(printed, [log[printed] for log in logs])
                    printed += 1
                for due in sorted(r for r in stops if r <= printed < rounds):
                    for i in stops.pop(due):
                        stop([boots[i]])
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
        stop(procs + boots)
        for flood in swarm_of_sybils:
            stop_tree(flood)
    codes = [p.returncode for p in procs]
    return judge(
        spec,
        configs,
        total,
        rounds,
        out,
        time.time() - started,
        codes,
        late=bool(late_rounds),
        cheaters=cheaters,
        bootstraps_stopped=stopped,
        ranks_per_node=ranks_per_node,
        sybil_report=out / "sybils" / "report.json" if sybils else None,
        honest=peers,
        seed=seed,
        tokens_per_second_alone=calibration.tokens_per_second_alone(spec),
        pages={**pages, **{f"boot{i}": f"http://{http}/" for i, http in enumerate(boot_http)}},
    )


def _round_zero(spec: RunSpec) -> float:
    """When round 0 starts: the dev chain's block clock decides (node/chain/clock.py chain_genesis)."""
    from node.chain import DevChain

    chain = DevChain(spec.chain.path)
    return chain.genesis_time + spec.schedule.start_block * chain.block_time


def _bootstrap_stops(rounds: int, all_down: int) -> dict[int, list[int]]:
    """round -> the bootstraps to stop when it begins: all at `all_down`, else the first halfway."""
    if all_down:
        return {all_down: list(range(BOOTSTRAPS))}
    return {rounds // 2: [0]} if rounds >= 2 else {}
