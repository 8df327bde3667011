"""The swarm against a centralized run: loss at equal tokens, and loss against wall-clock with and without overlap.

    .venv/bin/python benchmarks/efficiency.py                     # everything, ~30 min on 2 cores
    .venv/bin/python benchmarks/efficiency.py --rounds 4 --inner-steps 10 --peers 4 --no-demos   # a quick look
    .venv/bin/python benchmarks/efficiency.py --demo-dirs OVERLAP_DIR SEQUENTIAL_DIR   # demos already run

1. **Equal tokens, in process** (benchmarks/efficiency_runs.py): the same
   model (`tiny`), corpus (the stdlib corpus), pages, seeds and token budget
   for every run. At 4 peers: centralized AdamW with the swarm's global batch,
   dense DiLoCo (fp32 Δ, Nesterov outer step), the swarm's recipe (its codec
   with error feedback, robust mean, the overlapped round with its head start),
   the same recipe without overlap, and with a plain one-round delay (no head
   start: the option docs/DESIGN.md §3 rejected). At 8 peers: centralized and
   the swarm's recipe. Token efficiency is the tokens the centralized run
   needs to reach the swarm's final loss over the tokens the swarm spent (1.0:
   as good as centralized), interpolated between the centralized run's
   evaluations, four a round.
2. **Wall-clock, real swarm**: `gradswarm demo --peers 3` with and without
   overlap (`--no-overlap`), the same round length; node0's held-out loss
   after each round against the seconds since round 0 began.

Writes benchmarks/results/efficiency.json and efficiency.png (needs matplotlib, the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.compression_training import Task, load_corpus  # noqa: E402
from benchmarks.efficiency_runs import CENTRALIZED, DENSE_DILOCO, Curve, run, swarm_recipe  # noqa: E402
from node.round.report import read_reports  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PLAIN_DELAY = replace(swarm_recipe(delay=1), name="swarm-plain-delay", eager=0.0)


def recipes_for(peers: int) -> list:
    if peers == 4:
        return [CENTRALIZED, DENSE_DILOCO, swarm_recipe(), swarm_recipe(delay=0), PLAIN_DELAY]
    return [CENTRALIZED, swarm_recipe()]


def compare(curves: list[Curve]) -> list[dict]:
    """Per run: final loss, its gap to the centralized run's at equal tokens, and its token efficiency."""
    central = next(c for c in curves if c.recipe == CENTRALIZED.name)
    rows = []
    for c in curves:
        reach = c.tokens[-1] if c is central else central.tokens_to_reach(c.eval_loss[-1])
        rows.append(
            {
                "recipe": c.recipe,
                "peers": c.peers,
                "final_eval_loss": c.eval_loss[-1],
                "gap_to_centralized": c.eval_loss[-1] / central.eval_loss[-1] - 1,
                # None: the centralized run never got as low in the budget, so the swarm is at least as efficient
                "token_efficiency": None if reach is None else reach / c.tokens[-1],
                "tokens": c.tokens[-1],
                "wall_seconds": round(c.wall_seconds, 1),
            }
        )
    return rows


def run_demo(out: Path, rounds: int, overlap: bool) -> Path:
    command = [sys.executable, "-m", "node.cli", "demo", "--peers", "3", "--rounds", str(rounds), "--out", str(out)]
    if not overlap:
        command.append("--no-overlap")
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    return out


def demo_curve(out: Path) -> dict:
    """node0's loss after each round against seconds since round 0 began, and the demo's efficiency figures."""
    reports = read_reports(out / "nodes" / "node0" / "rounds.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    t0 = reports[min(reports)].t_start
    keys = ("overlap", "round_seconds", "inner_steps", "compute_utilization", "swarm_tokens_per_second", "tokens_per_second_alone")
    return {
        "dir": str(out),
        "seconds": [round(reports[r].t_end - t0, 1) for r in sorted(reports)],
        "eval_loss": [reports[r].eval_loss for r in sorted(reports)],
        **{k: summary.get(k) for k in keys},
    }


def plot(curves: list[Curve], demos: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG written")
        return False
    fig, axes = plt.subplots(1, 2 if demos else 1, figsize=(13 if demos else 7, 5), squeeze=False)
    ax = axes[0][0]
    for c in curves:
        ax.plot(c.tokens, c.eval_loss, label=f"{c.recipe} ({c.peers} peers)", linestyle="-" if c.peers == 4 else "--")
    ax.set(xlabel="tokens trained", ylabel="held-out loss", title="equal tokens, in process (tiny)")
    ax.legend(fontsize=8)
    if demos:
        ax = axes[0][1]
        for d in demos:
            label = f"{'overlap' if d['overlap'] else 'sequential'} (H={d['inner_steps']})"
            ax.plot(d["seconds"], d["eval_loss"], marker="o", label=label)
        ax.set(xlabel="seconds since round 0", ylabel="held-out loss (node0)", title="gradswarm demo --peers 3, 2 CPU cores")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--inner-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-demos", action="store_true", help="skip the wall-clock comparison")
    ap.add_argument("--demo-rounds", type=int, default=12)
    ap.add_argument("--demo-dirs", nargs=2, type=Path, metavar=("OVERLAP", "SEQUENTIAL"), help="read these demo runs instead")
    ap.add_argument("--out", type=Path, default=RESULTS / "efficiency.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_corpus()
    started = time.time()
    curves, rows = [], []
    for peers in args.peers:
        task = Task(peers=peers, rounds=args.rounds, inner_steps=args.inner_steps)
        print(f"== {peers} peers: {args.rounds} rounds x {args.inner_steps} inner steps x {task.batch_size} rows", flush=True)
        group = [run(recipe, task, corpus) for recipe in recipes_for(peers)]
        curves += group
        rows += compare(group)
    demos = []
    if args.demo_dirs:
        demos = [demo_curve(d) for d in args.demo_dirs]
    elif not args.no_demos:
        scratch = args.out.parent / "efficiency-demos"
        demos = [
            demo_curve(run_demo(scratch / name, args.demo_rounds, overlap)) for name, overlap in (("overlap", True), ("sequential", False))
        ]
    print(f"\n{'recipe':<20} {'peers':>5} {'final loss':>10} {'vs central':>10} {'token eff':>9}")
    for r in rows:
        eff = "  >= 1.00" if r["token_efficiency"] is None else f"{r['token_efficiency']:9.3f}"
        print(f"{r['recipe']:<20} {r['peers']:>5} {r['final_eval_loss']:10.4f} {r['gap_to_centralized']:+9.2%} {eff}")
    for d in demos:
        print(
            f"demo {'overlap' if d['overlap'] else 'sequential'}: loss {d['eval_loss'][-1]:.4f} after {d['seconds'][-1]:.0f} s, "
            f"H={d['inner_steps']}, utilization {d['compute_utilization']}"
        )
    result = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads, "gpu": False},
        "task": asdict(Task(rounds=args.rounds, inner_steps=args.inner_steps)) | {"run_id": None},
        "runs": rows,
        "curves": [asdict(c) for c in curves],
        "demos": demos,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    if plot(curves, demos, args.out.with_suffix(".png")):
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
