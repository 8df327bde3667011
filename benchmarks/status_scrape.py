"""What watching a node costs it: scrape a real node's /metrics every second (and poll /status every 2 s, as an open
status page does) for its whole run, and read back the time the node itself spent answering.

One node runs alone on its own dev chain (`gradswarm node run` as a process, real training,
evaluation, checkpoints), its [node] http on a free loopback port. The node counts the seconds its
HTTP threads spend on each request (gradswarm_node_http_request_seconds_total, from the parsed
request line to the last byte written); that, over the wall time and per round over round_seconds,
is the cost. The client's own latency (connect to last byte) is reported as p50/p99 per endpoint.

    python benchmarks/status_scrape.py               # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devnet import lone  # noqa: E402
from node.config import RunSpec  # noqa: E402

COUNTER = "gradswarm_node_http_request_seconds_total"


def start_node(work: Path, rounds: int, round_seconds: float, boot_seconds: int) -> tuple[subprocess.Popen, str, float, Path]:
    """The node process, its status URL, the wall time of round 0's start, and its data folder."""
    run = lone.prepare(
        work,
        RunSpec(name="status-scrape"),
        work / "corpus",
        boot_seconds=boot_seconds,
        round_seconds=round_seconds,
        http=True,
        seed=b"\x17" * 32,
    )
    return lone.start(run, rounds, work / "node.log"), run.url, run.round0_time, run.data_dir


def counter_of(text: str) -> float:
    for line in text.splitlines():
        if line.startswith(COUNTER + " "):
            return float(line.split()[1])
    raise ValueError(f"no {COUNTER} in the scrape")


class Poller:
    """GET `path` every `every` seconds until stopped; the client latency of each answer, and the counter for /metrics."""

    def __init__(self, url: str, path: str, every: float):
        self.url, self.path, self.every = url, path, every
        self.latencies: list[float] = []
        self.samples: list[tuple[float, float]] = []  # (wall time, node's counter)
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        next_at = time.time()
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + self.path, timeout=5) as response:
                    body = response.read()
                self.latencies.append(time.perf_counter() - t0)
                if self.path == "/metrics":
                    self.samples.append((time.time(), counter_of(body.decode())))
            except OSError:
                self.failures += 1  # not up yet, or gone
            next_at += self.every
            self.stop.wait(max(0.0, next_at - time.time()))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def per_round(samples: list[tuple[float, float]], genesis: float, round_seconds: float) -> list[dict]:
    """The node's HTTP seconds within each round window [start_r, start_r + L) it was scraped through, over L."""
    rows = []
    r = 0
    while genesis + (r + 1) * round_seconds <= samples[-1][0]:
        start, end = genesis + r * round_seconds, genesis + (r + 1) * round_seconds
        inside = [c for t, c in samples if start <= t < end]
        before = [c for t, c in samples if t < start]
        if inside and before:
            spent = inside[-1] - before[-1]
            rows.append({"round": r, "http_seconds": spent, "share_of_round": spent / round_seconds})
        r += 1
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    rows = result["per_round"]
    left.bar([r["round"] for r in rows], [100 * r["share_of_round"] for r in rows], color="#4477aa")
    left.axhline(1.0, color="#cc3311", linestyle="--", label="target: 1% of a round")
    left.set_xlabel("round")
    left.set_ylabel("node's HTTP time (% of the round)")
    left.set_yscale("log")
    left.legend()
    left.set_title("What scraping costs the node")
    for name, values in result["client_latency_ms"].items():
        right.hist(values["all"], bins=30, alpha=0.6, label=name)
    right.set_xlabel("client latency (ms)")
    right.set_ylabel("requests")
    right.legend()
    right.set_title("Latency seen by the scraper")
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/gradswarm-status-scrape")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--round-seconds", type=float, default=20.0)
    parser.add_argument("--boot-seconds", type=int, default=25)
    parser.add_argument("--no-page", action="store_true", help="scrape /metrics only (no /status poll every 2 s)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "status_scrape.json"))
    args = parser.parse_args()

    process, url, genesis, data_dir = start_node(Path(args.out), args.rounds, args.round_seconds, args.boot_seconds)
    pollers = [Poller(url, "/metrics", 1.0)] + ([] if args.no_page else [Poller(url, "/status", 2.0)])
    for p in pollers:
        p.thread.start()
    code = process.wait(timeout=args.boot_seconds + 120 + 3 * args.round_seconds * args.rounds)
    for p in pollers:
        p.stop.set()
        p.thread.join()
    if code != 0:
        print(f"the node exited with {code}; see {args.out}/node.log", file=sys.stderr)
        return 1
    samples = pollers[0].samples
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    requests = sum(len(p.latencies) for p in pollers)
    reports = [json.loads(line) for line in (data_dir / "rounds.jsonl").read_text().splitlines()]
    rows = per_round(samples, genesis, args.round_seconds)
    result = {
        "machine": f"{socket.gethostname()}, {sys.platform}, python {sys.version.split()[0]}",
        "rounds": len(reports),
        "round_seconds": args.round_seconds,
        "scraped_seconds": round(t1 - t0, 1),
        "requests": requests,
        "failed_requests": sum(p.failures for p in pollers),
        "node_http_seconds": round(c1 - c0, 6),
        "node_http_share_of_wall": (c1 - c0) / (t1 - t0),
        "node_http_ms_per_request": 1000 * (c1 - c0) / max(1, requests - 1),
        "max_share_of_a_round": max(r["share_of_round"] for r in rows) if rows else None,
        "per_round": rows,
        "client_latency_ms": {
            p.path: {
                "p50": 1000 * quantile(p.latencies, 0.5),
                "p99": 1000 * quantile(p.latencies, 0.99),
                "mean": 1000 * statistics.fmean(p.latencies),
                "all": [round(1000 * x, 3) for x in p.latencies],
            }
            for p in pollers
        },
        "compute_utilization": [r.get("compute_utilization") for r in reports],
        "target": "node_http_share_of_wall and every round's share < 0.01",
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out.with_suffix(".png"))
    share = result["node_http_share_of_wall"]
    print(f"{requests} requests over {t1 - t0:.0f} s: the node spent {c1 - c0:.4f} s answering ({100 * share:.4f}% of the wall time)")
    print(f"worst round: {100 * (result['max_share_of_a_round'] or 0):.4f}% of its {args.round_seconds:g} s")
    for path, lat in result["client_latency_ms"].items():
        print(f"{path}: client latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
    return 0 if share < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
