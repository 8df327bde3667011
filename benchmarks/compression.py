"""Pseudo-gradient codecs side by side: bytes, speed, reconstruction error, and training loss.

    .venv/bin/python benchmarks/compression.py --quick   # < 2 min on 2 cores: codec figures only
    .venv/bin/python benchmarks/compression.py           # + the 4-peer training comparison (~9 min)
    .venv/bin/python benchmarks/compression.py --preset tiny --inner-steps 40 --rounds 12 \
        --entries dense-fp32,dense-fp32-sgd,sparseloco,sparseloco-ec,demo-dct --out DIR   # demo settings
    .venv/bin/python benchmarks/compression.py --training-only --preset tiny --inner-steps 40 --rounds 12 \
        --entries dense-fp32-sgd,sl-anchor,sl-lr3.0 --out DIR   # training only: the ABLATIONS of compression_codecs.py

Both modes:

1. **Codec figures** on a flat vector with the parameter shapes of the
   ``base100m`` preset (~104M values; the shapes come from a meta-device
   model, nothing is downloaded). The values are synthetic pseudo-gradients:
   per tensor, Laplace noise times a log-normal scale per row (heavy tails
   and row structure, like an AdamW update). For each of our codecs and
   hivemind's ``Float16Compression``, ``Uniform8BitQuantization`` and
   ``Quantile8BitQuantization``: bytes on the wire (hivemind: the serialized
   protobuf), ratio to fp32, encode and decode throughput in MB/s of fp32
   input (hivemind: compress + serialize, parse + extract), and the relative
   reconstruction error ``|decode(encode(x)) - x| / |x|`` of one step.
2. **The 5% criterion** at the demo's settings: one round of H inner steps of
   the ``tiny`` preset against the codec work a node does in that round
   (error-feedback encode + decode, a decode of its own payload at publish,
   and a decode per other peer).

Full mode adds:

3. **Training**: the same task for every entry, simulated in process with the
   node's own round (benchmarks/compression_training.py): ``assign_pages``,
   ``local_delta`` with the node's ``train_seed``, ``ErrorFeedback.step``
   into the codec's payload, its decode, and ``next_state`` (robust mean and
   outer step); ``tiny`` preset, 4 peers, the same rounds, inner steps,
   pages, seeds and held-out eval pages for everyone.
   Dense fp32 DiLoCo, dense fp16 and hivemind 8-bit use DiLoCo's outer
   Nesterov (lr 0.7, momentum 0.9) on the uncompressed-or-quantized mean
   (``dense-fp32-sgd`` is dense fp32 with the sparse codecs' outer step, to
   tell the recipe's effect from compression's);
   the sparse codecs use the SparseLoCo recipe: error feedback with decay
   beta as the momentum, outer SGD (lr 1, momentum 0) on the mean of the
   decoded contributions. ``sparseloco-ec`` decodes to exactly the vectors of
   ``sparseloco`` (asserted every round), so it shares that run's losses and
   has its own byte counts.

Writes ``benchmarks/results/compression.json`` and ``compression.png``
(loss against cumulative bytes per peer; needs matplotlib, the ``bench``
extra).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.compression_codecs import (  # noqa: E402
    ABLATIONS,
    ENTRIES,
    HIVEMIND_NAMES,
    HIVEMIND_ONLY,
    Entry,
    codec_figures,
    synthetic_pseudo_gradient,
)
from benchmarks.compression_training import Task, load_corpus, overhead, train_entry  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def best_dense_loss(rows: list[dict]) -> float | None:
    """The issue's yardstick: the lowest final loss of any uncompressed or dense-quantized entry."""
    dense = [
        r["final_eval_loss"]
        for r in rows
        if "final_eval_loss" in r and r.get("settings", {}).get("codec", "").startswith(("fp32", "dense", "hivemind"))
    ]
    return min(dense) if dense else None


def table(rows: list[dict], full: bool) -> str:
    """The printed table: codec figures, and in full mode the training columns against the best dense entry."""
    head = f"{'codec':<22} {'bytes':>12} {'x fp32':>8} {'enc MB/s':>9} {'dec MB/s':>9} {'rel err':>8}"
    if full:
        head += f" {'B/peer/round':>13} {'x fp32':>7} {'final loss':>10} {'vs dense':>8}"
    lines = [head, "-" * len(head)]
    base = best_dense_loss(rows)

    def cell(value: float | None, fmt: str, width: int) -> str:
        return format(value, fmt) if value is not None else f"{'-':>{width}}"

    for r in rows:
        line = (
            f"{r['name']:<22} {cell(r['bytes_100m'], '>12,d', 12)} {cell(r['ratio_vs_fp32'], '8.1f', 8)} "
            f"{cell(r['encode_MBps'], '9.1f', 9)} {cell(r['decode_MBps'], '9.1f', 9)} {cell(r['rel_error'], '8.4f', 8)}"
        )
        if full and "final_eval_loss" in r:
            rel = (r["final_eval_loss"] / base - 1) * 100 if base else float("nan")
            line += f" {r['bytes_per_peer_round']:>13,.0f} {r['ratio_vs_fp32_tiny']:7.1f} {r['final_eval_loss']:10.4f} {rel:+7.2f}%"
        lines.append(line)
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, task: Task) -> bool:
    """Loss against cumulative bytes and against rounds; False when matplotlib is missing (an optional extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG written")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for r in rows:
        if "eval_loss" not in r:
            continue
        style = "--" if r["name"] == "sparseloco" else "-"
        ax1.plot(r["cumulative_bytes_per_peer"], r["eval_loss"], style, marker=".", label=r["name"])
        ax2.plot(range(1, len(r["eval_loss"]) + 1), r["eval_loss"], style, marker=".", label=r["name"])
    ax1.set_xscale("log")
    ax1.set_xlabel("cumulative bytes uploaded per peer")
    ax1.set_ylabel("held-out eval loss")
    ax1.set_title(f"loss vs bytes ({task.preset}, {task.peers} peers, H={task.inner_steps})")
    ax2.set_xlabel("round")
    ax2.set_title("loss vs round (sparseloco-ec = sparseloco)")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def codec_section(entries: list[Entry], preset: str) -> tuple[list[dict], int]:
    print(f"== codec figures on the parameter shapes of {preset}", flush=True)
    x, ntensors = synthetic_pseudo_gradient(preset)
    print(f"   {x.numel():,d} values in {ntensors} tensors", flush=True)
    extra = [Entry(HIVEMIND_NAMES[n], f"hivemind:{n}") for n in HIVEMIND_ONLY]
    figures = codec_figures(entries + extra, x, repeat=3)  # best of 3: one call is too noisy on 2 shared cores
    numel = x.numel()
    del x
    gc.collect()
    return figures, numel


def overhead_section(entries: list[Entry], corpus, inner_steps: int) -> dict:
    print("== the 5% criterion: codec work of one demo round vs its inner-loop compute", flush=True)
    ovh = overhead(entries, corpus, also_steps=inner_steps)
    for c in ovh["codecs"]:
        print(
            f"  {c['name']:<24} {c['seconds'] * 1000:8.1f} ms  = {100 * c['fraction_of_inner']:5.2f}% of "
            f"{ovh['inner_seconds']:.2f} s ({ovh['inner_steps']} steps, {ovh['preset']});  "
            f"{100 * c['fraction_of_inner_also']:5.2f}% of {ovh['also']['inner_seconds']:.2f} s "
            f"({ovh['also']['inner_steps']} steps)",
            flush=True,
        )
    return ovh


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="codec figures and the 5%% check only (< 2 min)")
    ap.add_argument("--rounds", type=int, default=30, help="training rounds per entry (full mode)")
    ap.add_argument("--inner-steps", type=int, default=10, help="inner steps per round (full mode)")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--preset", default="base100m", help="model preset whose parameter shapes the codec figures use")
    ap.add_argument("--entries", default="", help="comma-separated entry names (full mode; the ablations too)")
    ap.add_argument("--training-only", action="store_true", help="skip the codec figures and the 5%% check")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    full = not args.quick
    entries = ENTRIES
    if args.entries:
        wanted = set(args.entries.split(","))
        entries = [e for e in ENTRIES + ABLATIONS if e.name in wanted]
        if unknown := wanted - {e.name for e in entries}:
            ap.error(f"unknown entries: {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    figures, fig_numel, ovh = [], 0, None
    if not args.training_only:
        figures, fig_numel = codec_section(entries, args.preset)
    corpus = load_corpus()
    if not args.training_only:
        ovh = overhead_section(entries, corpus, args.inner_steps)

    task = Task(peers=args.peers, rounds=args.rounds, inner_steps=args.inner_steps)
    runs: dict[str, dict] = {}
    if full:
        print(f"== training: {task.preset}, {task.peers} peers, {task.rounds} rounds x {task.inner_steps} inner steps", flush=True)
        names = [e.name for e in entries]
        for entry in entries:
            if entry.name == "sparseloco-ec" and "sparseloco" in names:
                continue  # shares the sparseloco run (asserted identical decodes)
            shadow = None
            if entry.name == "sparseloco" and "sparseloco-ec" in names:
                shadow = next(e for e in entries if e.name == "sparseloco-ec")
            run = train_entry(entry, task, corpus, shadow)
            runs[entry.name] = run
            if shadow:
                runs[shadow.name] = {
                    **run,
                    "name": shadow.name,
                    "bytes_per_peer_round": run["shadow"]["bytes_per_peer_round"],
                    "shared_run_with": entry.name,
                }

    by_name = {e.name: e for e in entries}
    rows = []
    for f in figures or [
        {"name": e.name, "ratio_vs_fp32": None, "encode_MBps": None, "decode_MBps": None, "rel_error": None, "bytes": None} for e in entries
    ]:
        row = {
            "name": f["name"],
            "ratio_vs_fp32": f["ratio_vs_fp32"],
            "encode_MBps": f["encode_MBps"],
            "decode_MBps": f["decode_MBps"],
            "rel_error": f["rel_error"],
            "bytes_100m": f["bytes"],
        }
        if f["name"] in by_name:
            row["settings"] = by_name[f["name"]].describe()
        run = runs.get(f["name"])
        if run:
            per_round = run["bytes_per_peer_round"]
            row.update(
                final_eval_loss=run["eval_loss"][-1],
                bytes_per_peer_round=sum(per_round) / len(per_round),
                eval_loss=run["eval_loss"],
                cumulative_bytes_per_peer=list(np.cumsum(per_round).tolist()),
                ratio_vs_fp32_tiny=4 * run["numel"] / (sum(per_round) / len(per_round)),
            )
            if "shared_run_with" in run:
                row["shared_run_with"] = run["shared_run_with"]
        rows.append(row)
    print(
        f"\nbytes, ratio, MB/s, rel err: one vector with the shapes of {args.preset} ({fig_numel:,d} values)"
        + (
            f"; B/peer/round and losses: {task.preset}, {task.peers} peers, {task.rounds} rounds x {task.inner_steps} inner steps"
            if full
            else ""
        )
    )
    print(table(rows, full))
    base = next((r for r in rows if r["name"] == "dense-fp32" and "final_eval_loss" in r), None)
    result = {
        "mode": "full" if full else "quick",
        "command": " ".join([Path(sys.executable).name, "benchmarks/compression.py"] + (argv or sys.argv[1:])),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "codec_figures": {"preset_shapes": args.preset, "numel": fig_numel, "data": "synthetic: Laplace x log-normal row scale per tensor"},
        "overhead": ovh,
        "codecs": rows,
        "wall_seconds": time.perf_counter() - t0,
    }
    if full:
        result["training"] = {
            "task": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in task.__dict__.items()},
            "dense_fp32_final_eval_loss": base["final_eval_loss"] if base else None,
            "best_dense_final_eval_loss": best_dense_loss(rows),
            "wall_seconds": {n: r["wall_seconds"] for n, r in runs.items() if "shared_run_with" not in r},
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compression.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out / 'compression.json'}", end="")
    if full and plot(rows, args.out / "compression.png", task):
        print(f" and {args.out / 'compression.png'}", end="")
    print(f" in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
