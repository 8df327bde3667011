"""Training throughput of one node: tokens/s for a model preset, and on CUDA the model FLOPs utilization.

    .venv/bin/python benchmarks/throughput.py --preset tiny                       # the node as one process
    torchrun --standalone --nproc-per-node 2 benchmarks/throughput.py --preset tiny --parallel ddp   # 2 ranks
    python benchmarks/throughput.py --preset base1b --device cuda                 # ~1B on one GPU, with MFU
    python benchmarks/throughput.py --preset base1b --device cuda --parallel fsdp # the ranked path with 1 rank

What is timed is a node's round of training through the node's own code: θ
loaded into the model, H inner AdamW steps (``InnerTrainer``), the trained
weights read back. Under torchrun (or with ``--parallel`` in one process) it is
rank 0's path of node/trainer/distributed.py: θ broadcast to the ranks, each
rank computing its rows of every batch under DDP or FSDP2, the full weights
gathered to rank 0. Tokens/s counts the node's whole batch (batch_size x
seq_len per step, all ranks together), after ``--warmup`` steps, in the
fastest of ``--repeats`` rounds.

MFU is the achieved model FLOP/s over the peak dense bf16 FLOP/s of the
detected GPU (times the ranks), with model FLOPs per token 6 N + 12 L h T:
N the parameters less the embedding table (a lookup, not a matmul), L layers,
h the hidden size, T the sequence length (attention scores and values,
forward and backward, counted in full as in PaLM's appendix B). Recomputed
activations are not counted, so activation checkpointing lowers MFU.

Writes ``benchmarks/results/throughput-<device>-<preset>-<mode>.json`` (on CPU the mode names the threads per rank).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from node.config import TrainSpec  # noqa: E402
from node.outer.optimizer import OuterState  # noqa: E402
from node.trainer import params  # noqa: E402
from node.trainer.distributed import RankedTrainer, RankGroup  # noqa: E402
from node.trainer.inner import InnerTrainer  # noqa: E402
from node.trainer.model import get_preset, node_model, recomputes_activations  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# Dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity); the first name found in the device's wins.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "B200": 2250.0, "A100": 312.0}


class RandomPages:
    """Byte pages of random tokens: throughput does not depend on the text, and nothing is read from disk."""

    def __init__(self, count: int, tokens: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self._pages = [rng.integers(0, 256, tokens, dtype=np.uint8) for _ in range(count)]

    def pages(self, ids: list[int]) -> list[np.ndarray]:
        return [self._pages[i] for i in ids]


def flops_per_token(preset: str, numel: int, seq_len: int, vocab_size: int = 256) -> float:
    p = get_preset(preset)
    return 6.0 * (numel - vocab_size * p.hidden_size) + 12.0 * p.num_layers * p.hidden_size * seq_len


def peak_tflops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def start_group(device: torch.device) -> RankGroup:
    """The node's process group as join_ranks makes it, also for a single rank (so one GPU runs the ranked path)."""
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29511"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, value)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=10))
    return RankGroup(rank=dist.get_rank(), world=dist.get_world_size(), device=device, control=dist.new_group(backend="gloo"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per step for the whole node (all ranks)")
    ap.add_argument("--seq-len", type=int, default=0, help="default: the preset's")
    ap.add_argument("--steps", type=int, default=20, help="timed inner steps (one round of H = steps)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds; the fastest is reported")
    ap.add_argument("--parallel", default="none", choices=["none", "ddp", "fsdp"], help="none: the single-process path")
    ap.add_argument("--activation-checkpointing", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="peak dense bf16 TFLOP/s, for a GPU not in the table")
    ap.add_argument("--out", default="", help="JSON path (default under benchmarks/results)")
    args = ap.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and args.parallel == "none":
        ap.error("under torchrun choose --parallel ddp or fsdp")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device
    )
    group = start_group(device) if args.parallel != "none" else None
    if group is not None:
        device = group.device
    seq_len = args.seq_len or get_preset(args.preset).seq_len
    spec = TrainSpec(batch_size=args.batch_size, seq_len=seq_len, lr=1e-4, warmup_steps=0)
    model = node_model(args.preset, 0, device, args.activation_checkpointing)
    checkpointing = recomputes_activations(args.activation_checkpointing, device)
    numel = params.numel(model)
    theta = params.flatten(model).cpu()
    corpus = RandomPages(count=16, tokens=max(4096, 2 * (seq_len + 1)))
    page_ids = list(range(8))

    with tempfile.TemporaryDirectory() as scratch:
        if group is not None:
            ranked = RankedTrainer(group, model, spec, args.parallel, corpus, Path(scratch))
            if group.rank > 0:
                return ranked.serve()

            def train_round(steps: int, seed: int) -> float:
                return ranked.train(theta, page_ids, seed, steps, None)[0]
        else:
            trainer = InnerTrainer(
                model, lr=spec.lr, weight_decay=spec.weight_decay, batch_size=spec.batch_size, seq_len=seq_len, device=device
            )

            def train_round(steps: int, seed: int) -> float:  # as SwarmNode._train_and_compress does
                params.load_flat(model, theta.to(device))
                loss = trainer.train(corpus.pages(page_ids), steps, seed)
                params.flatten(model)
                return loss

        train_round(args.warmup, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rounds = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            loss = train_round(args.steps, seed=1 + repeat)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rounds.append(time.perf_counter() - started)
        seconds = min(rounds)  # best of: on a shared machine the slower rounds measure the neighbours
        if group is not None:
            ranked.finish(OuterState.fresh(theta), 0)

    tokens = args.steps * args.batch_size * seq_len
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {
        "preset": args.preset,
        "params": numel,
        "device": name,
        "torch": torch.__version__,
        "ranks": world,
        "parallel": args.parallel,
        "activation_checkpointing": checkpointing,
        "bf16_autocast": device.type == "cuda",
        "cpu_threads_per_rank": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "seq_len": seq_len,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "round_seconds": [round(r, 3) for r in rounds],
        "tokens_per_s": round(tokens / seconds, 1),
        "tokens_per_s_per_rank": round(tokens / seconds / world, 1),
        "final_loss": round(loss, 4),
        "flops_per_token": flops_per_token(args.preset, numel, seq_len),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    achieved = result["flops_per_token"] * tokens / seconds
    result["achieved_tflops"] = round(achieved / 1e12, 4)
    if device.type == "cuda":
        peak = args.peak_tflops or peak_tflops(name)
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if peak:
            result["peak_bf16_tflops_per_gpu"] = peak
            result["mfu"] = round(achieved / (peak * 1e12 * world), 4)
    mode = ("single" if args.parallel == "none" else f"{args.parallel}x{world}") + (
        f"-t{torch.get_num_threads()}" if device.type == "cpu" else ""
    )
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = Path(args.out) if args.out else RESULTS / f"throughput-{slug}-{args.preset}-{mode}{'-ac' if checkpointing else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    mfu = f", MFU {result['mfu']:.1%}" if "mfu" in result else ""
    print(
        f"{args.preset} ({numel / 1e6:.1f}M) on {name}, {mode}, AC {'on' if checkpointing else 'off'}: "
        f"{result['tokens_per_s']:.0f} tokens/s per node ({result['tokens_per_s_per_rank']:.0f} per rank){mfu}; "
        f"{args.steps} steps of {args.batch_size} x {seq_len} in {seconds:.2f} s -> {out}"
    )
    if group is not None:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
