"""Resident memory of one bootstrap serving 20 nodes on loopback.

    .venv/bin/python benchmarks/bootstrap_memory.py [--nodes 20] [--seconds 30]

Starts the real daemon (`gradswarm bootstrap run`, a separate process tree:
the Python main process, hivemind's DHT process and its p2pd), measures it
idle for a few seconds, then starts N lightweight nodes: plain hivemind DHT
peers with the nodes' own record validator, each with a hotkey registered on
a dev chain, each storing a few signed records (a PeerBinding and
ContributionMetas) through the DHT. Once the bootstrap reports all N
connected, it samples the bootstrap tree's memory every second for
`--seconds` while the nodes keep storing and reading records, then prints the
figures and writes ``benchmarks/results/bootstrap_memory.json``.

RSS counts shared pages in every process that maps them: hivemind's DHT
process is forked from the main one, so most of its RSS is the main
process's pages, and the sum of RSS overstates what the tree costs. PSS
splits shared pages between all the processes that map them, here including
the benchmark's own node processes (they load the same torch libraries), so
it understates what the bootstrap would need alone. USS (pages no other
process maps) is the floor. The figure to plan a host with is
``standalone``: the main process's RSS plus what the DHT process and p2pd
hold on their own (their USS; p2pd shares almost nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hivemind  # noqa: E402
import psutil  # noqa: E402
from bittensor.sp_core import Keypair  # noqa: E402
from hivemind.utils import get_dht_time  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from node.chain import DevChain  # noqa: E402
from node.config import ChainSpec, NodeConfig, RunSpec, render_run_file  # noqa: E402
from node.swarm import records  # noqa: E402
from protocol import signing, wire  # noqa: E402
from protocol.messages import ContributionMeta, PeerBinding  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
IDLE_SECONDS = 5.0


def metric_values(url: str) -> dict[str, float]:
    """Unlabelled samples plus `name{label=value}` keys, from the daemon's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            values[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return values


def tree_memory(root: psutil.Process) -> dict[str, dict[str, int]]:
    """rss/pss/uss per process of the bootstrap's tree, named main, dht, p2pd."""
    out = {}
    for process in [root, *root.children(recursive=True)]:
        name = "main" if process.pid == root.pid else ("p2pd" if process.name() == "p2pd" else "dht")
        info = process.memory_full_info()
        out[name] = {"rss": info.rss, "pss": info.pss, "uss": info.uss}
    return out


def signed_records(keypair: Keypair, run_id: bytes, peer_id: bytes, round_: int) -> list:
    binding = PeerBinding(run_id=run_id, hotkey=keypair.ss58_address, peer_id=peer_id, expires_at=time.time() + 600)
    meta = ContributionMeta(
        run_id=run_id,
        round=round_,
        hotkey=keypair.ss58_address,
        peer_id=peer_id,
        digest=os.urandom(32),
        nbytes=20_000,
        codec="sparseloco-ec",
        trained_from=bytes(32),
    )
    return [signing.sign(binding, keypair), signing.sign(meta, keypair)]


def store(dht: hivemind.DHT, msg) -> bool:
    return dht.store(records.key_for(msg), wire.encode(msg), get_dht_time() + 300, subkey=msg.hotkey)


def summarize(samples: list[dict[str, dict[str, int]]]) -> dict:
    figures: dict = {}
    alone = [s["main"]["rss"] + sum(p["uss"] for name, p in s.items() if name != "main") for s in samples]
    figures["standalone_mean_mb"] = round(mean(alone) / 2**20, 1)
    figures["standalone_max_mb"] = round(max(alone) / 2**20, 1)
    for kind in ("rss", "pss", "uss"):
        totals = [sum(p[kind] for p in s.values()) for s in samples]
        figures[f"{kind}_total_mean_mb"] = round(mean(totals) / 2**20, 1)
        figures[f"{kind}_total_max_mb"] = round(max(totals) / 2**20, 1)
        for name in sorted(samples[-1]):
            figures[f"{kind}_{name}_mean_mb"] = round(mean(s[name][kind] for s in samples if name in s) / 2**20, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bootstrap_memory.json")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bootstrap-memory-"))
    chain = DevChain.create(work / "chain.sqlite")
    spec = RunSpec(chain=ChainSpec(kind="dev", path=str(work / "chain.sqlite")))
    keys = [Keypair.create_from_uri(f"//bench-node-{i}") for i in range(args.nodes)]
    for kp in keys:
        chain.register(kp.ss58_address)
        chain.add_stake(kp.ss58_address, 1.0)
    (work / "run.toml").write_text(render_run_file(spec, NodeConfig()))

    boot = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "bootstrap",
            "run",
            "--run",
            str(work / "run.toml"),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--identity",
            str(work / "boot.key"),
            "--maddrs-file",
            str(work / "boot.json"),
            "--http",
            "127.0.0.1:0",
        ],
        cwd=ROOT,
        stdout=open(work / "bootstrap.log", "wb"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
    )
    nodes: list[hivemind.DHT] = []
    stop = threading.Event()
    try:
        deadline = time.time() + 120
        while not (work / "boot.json").exists():
            if boot.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"bootstrap did not start; see {work / 'bootstrap.log'}")
            time.sleep(0.2)
        info = json.loads((work / "boot.json").read_text())
        root = psutil.Process(boot.pid)
        time.sleep(IDLE_SECONDS)
        idle = summarize([tree_memory(root)])
        print(f"idle bootstrap: standalone {idle['standalone_mean_mb']} MB, rss sum {idle['rss_total_mean_mb']} MB")

        validator = records.RunRecordValidator(spec.run_id, chain)
        started = time.time()
        for kp in keys:
            dht = hivemind.DHT(
                initial_peers=info["maddrs"], host_maddrs=["/ip4/127.0.0.1/tcp/0"], record_validators=[validator], start=True
            )
            nodes.append(dht)
            for msg in signed_records(kp, spec.run_id, dht.peer_id.to_bytes(), round_=0):
                if not store(dht, msg):
                    raise RuntimeError("a valid record was refused")
        connected = 0.0
        while connected < args.nodes:
            if time.time() - started > 180:
                raise RuntimeError(f"only {connected:.0f} of {args.nodes} nodes connected to the bootstrap")
            time.sleep(1)
            connected = metric_values(info["http"]).get("gradswarm_bootstrap_peers_connected", 0.0)
        print(f"{args.nodes} nodes connected after {time.time() - started:.1f} s; sampling for {args.seconds:.0f} s")

        def traffic() -> None:  # the nodes keep publishing and reading, as in a round
            round_ = 1
            while not stop.is_set():
                for kp, dht in zip(keys, nodes, strict=True):
                    if stop.is_set():
                        return
                    store(dht, signed_records(kp, spec.run_id, dht.peer_id.to_bytes(), round_)[1])
                    dht.get(records.round_key(spec.run_id, "contrib", round_), latest=True)
                round_ += 1

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        samples = []
        end = time.time() + args.seconds
        while time.time() < end:
            samples.append(tree_memory(root))
            time.sleep(1.0)
        stop.set()
        worker.join(timeout=60)
        final = metric_values(info["http"])
    finally:
        stop.set()
        for dht in nodes:
            dht.shutdown()
        if boot.poll() is None:
            boot.send_signal(signal.SIGTERM)
            boot.wait(timeout=30)

    serving = summarize(samples)
    result = {
        "nodes": args.nodes,
        "sample_seconds": args.seconds,
        "samples": len(samples),
        "idle": idle,
        "serving": serving,
        "bootstrap_metrics": {k: v for k, v in final.items() if not k.startswith("gradswarm_bootstrap_records_rejected")},
        "records_rejected": sum(v for k, v in final.items() if k.startswith("gradswarm_bootstrap_records_rejected")),
        "machine": {
            "python": platform.python_version(),
            "hivemind": hivemind.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bootstrap serving {args.nodes} nodes, mean over {len(samples)} samples:")
    print(f"  standalone (RSS main + USS dht, p2pd): {serving['standalone_mean_mb']} MB (max {serving['standalone_max_mb']})")
    for kind in ("rss", "pss", "uss"):
        parts = ", ".join(f"{name} {serving[f'{kind}_{name}_mean_mb']}" for name in ("main", "dht", "p2pd"))
        print(f"  {kind.upper()}: total {serving[f'{kind}_total_mean_mb']} MB (max {serving[f'{kind}_total_max_mb']}); {parts}")
    print(
        f"  records stored {final.get('gradswarm_bootstrap_dht_records{table=storage}', 0):.0f}, "
        f"rejected {result['records_rejected']:.0f}; written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
