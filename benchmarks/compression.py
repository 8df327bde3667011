"""Pseudo-gradient codecs side by side: bytes, speed, reconstruction error, and training loss.

    .venv/bin/python benchmarks/compression.py --quick   # < 2 min on 2 cores: codec figures only
    .venv/bin/python benchmarks/compression.py           # + the 4-peer training comparison (~9 min)
    .venv/bin/python benchmarks/compression.py --preset tiny --inner-steps 40 --rounds 12 \
        --entries dense-fp32,dense-fp32-sgd,sparseloco,sparseloco-ec,demo-dct --out DIR   # demo settings

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
   node's own pieces (``InnerTrainer``, ``assign_pages``, ``robust_mean``,
   ``OuterOptimizer``, ``ErrorFeedback``): ``tiny`` preset, 4 peers, the same
   rounds, inner steps, pages, seeds and held-out eval pages for everyone.
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
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from protocol.compression import CodecSpec, ErrorFeedback, get_codec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MB = 1e6


# --------------------------------------------------------------------------- codecs under test


@dataclass(frozen=True)
class Entry:
    """One codec configuration as it would appear in a run spec."""

    name: str
    codec: str  # our codec name, "fp32" (no codec) or "hivemind:<class>"
    chunk: int = 4096
    k: int = 64
    value_bits: int = 2
    scale_group: int = 1
    # Training recipe (full mode).
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    ef_beta: float | None = None  # None: no error feedback

    def spec(self) -> CodecSpec:
        return CodecSpec(
            name=self.codec, chunk=self.chunk, k=self.k, value_bits=self.value_bits, scale_group=self.scale_group
        )

    def describe(self) -> dict:
        d = {"codec": self.codec}
        if not self.codec.startswith(("fp32", "hivemind", "dense")):
            d.update(chunk=self.chunk, k=self.k)
            if self.codec != "topk":
                d.update(value_bits=self.value_bits, scale_group=self.scale_group)
        d["outer"] = {"lr": self.outer_lr, "momentum": self.outer_momentum, "nesterov": True}
        d["error_feedback_beta"] = self.ef_beta
        return d


SPARSE = dict(chunk=4096, k=64, value_bits=2, scale_group=32, outer_lr=1.0, outer_momentum=0.0, ef_beta=0.95)

ENTRIES = [
    Entry("dense-fp32", "fp32"),
    # Not DiLoCo's recipe: dense fp32 with the sparse codecs' outer step, to separate the
    # effect of the recipe from that of compression.
    Entry("dense-fp32-sgd", "fp32", outer_lr=1.0, outer_momentum=0.0),
    Entry("hivemind-uniform8bit", "hivemind:Uniform8BitQuantization"),
    Entry("dense-fp16", "dense-fp16"),
    Entry("topk", "topk", ef_beta=0.95),  # the node's codec before this issue (fp16 values, u16 indices)
    Entry("sparseloco", "sparseloco", **SPARSE),
    Entry("sparseloco-ec", "sparseloco-ec", **SPARSE),
    Entry("demo-dct", "demo-dct", **SPARSE),
]
HIVEMIND_ONLY = ["Float16Compression", "Quantile8BitQuantization"]  # codec figures only
HIVEMIND_NAMES = {"Float16Compression": "hivemind-float16", "Quantile8BitQuantization": "hivemind-quantile8bit"}


class HivemindCodec:
    """hivemind's own codec, measured as bytes on the wire (serialized protobuf)."""

    def __init__(self, cls_name: str):
        import hivemind.compression as hc

        self.impl = getattr(hc, cls_name)()
        self.hc = hc

    def encode(self, x: torch.Tensor) -> bytes:
        info = self.hc.CompressionInfo.from_tensor(x, key=0)
        return self.impl.compress(x, info).SerializeToString()

    def decode(self, payload: bytes, numel: int) -> torch.Tensor:
        from hivemind.proto import runtime_pb2

        msg = runtime_pb2.Tensor()
        msg.ParseFromString(payload)
        return self.impl.extract(msg).reshape(-1).float()


def make_codec(entry: Entry):
    if entry.codec == "fp32":
        return None
    if entry.codec.startswith("hivemind:"):
        return HivemindCodec(entry.codec.split(":", 1)[1])
    return get_codec(entry.spec())


# --------------------------------------------------------------------------- 1. codec figures


def synthetic_pseudo_gradient(preset: str, seed: int = 0) -> tuple[torch.Tensor, int]:
    """A flat vector with the parameter shapes of ``preset`` (sorted-name order, as the node flattens)."""
    from transformers import LlamaForCausalLM

    from node.trainer.model import llama_config

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(preset))
    shapes = [tuple(p.shape) for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0])]
    del model
    numel = sum(math.prod(s) for s in shapes)
    out = torch.empty(numel, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    laplace = torch.distributions.Laplace(0.0, 1.0)
    offset = 0
    for shape in shapes:
        n = math.prod(shape)
        rows = shape[0] if len(shape) > 1 else 1
        view = out[offset : offset + n].view(rows, -1)
        torch.manual_seed(int(torch.randint(1 << 31, (1,), generator=gen)))
        view.copy_(laplace.sample(view.shape))
        view.mul_(torch.exp(0.5 * torch.randn(rows, 1, generator=gen)) * 1e-3)
        offset += n
    return out, len(shapes)


def time_call(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def codec_figures(entries: list[Entry], x: torch.Tensor, repeat: int) -> list[dict]:
    numel = x.numel()
    fp32_bytes = 4 * numel
    norm = float(x.double().norm())
    rows = []
    for entry in entries:
        if entry.codec == "fp32":
            rows.append(dict(name=entry.name, bytes=fp32_bytes, ratio_vs_fp32=1.0, encode_MBps=None,
                             decode_MBps=None, rel_error=0.0))
            continue
        codec = make_codec(entry)
        n = 1 if entry.codec.startswith("hivemind") else repeat  # hivemind's 8-bit encoders take ~10 s here
        t_enc, payload = time_call(lambda: codec.encode(x), n)
        t_dec, y = time_call(partial(codec.decode, payload, numel), n)
        err = float((y.double() - x.double()).norm()) / norm
        rows.append(
            dict(
                name=entry.name,
                bytes=len(payload),
                ratio_vs_fp32=fp32_bytes / len(payload),
                encode_MBps=fp32_bytes / MB / t_enc,
                decode_MBps=fp32_bytes / MB / t_dec,
                rel_error=err,
            )
        )
        print(f"  {entry.name:<24} {len(payload):>12,d} B  x{fp32_bytes / len(payload):8.1f}  "
              f"enc {fp32_bytes / MB / t_enc:8.1f} MB/s  dec {fp32_bytes / MB / t_dec:8.1f} MB/s  err {err:.4f}",
              flush=True)
        del payload, y
        gc.collect()
    return rows


# --------------------------------------------------------------------------- shared training pieces


@dataclass
class Task:
    preset: str = "tiny"
    peers: int = 4
    rounds: int = 16
    inner_steps: int = 40
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    batch_size: int = 8
    seq_len: int = 128
    pages_per_round: int = 8
    eval_pages: int = 8
    seed: int = 0
    run_id: bytes = field(default_factory=lambda: hashlib.sha256(b"gradswarm/benchmarks/compression").digest())


class Swarm:
    """The round math of the node, in one process (see node/service.py)."""

    def __init__(self, task: Task, corpus):
        from node.outer.optimizer import OuterState
        from node.trainer import params
        from node.trainer.inner import InnerTrainer
        from node.trainer.model import build_model
        from protocol.assignment import eval_pages

        self.task, self.corpus, self.params = task, corpus, params
        eval_ids = eval_pages(task.run_id, corpus.num_pages, task.eval_pages)
        self.excluded = frozenset(eval_ids)
        self.eval_set = corpus.pages(eval_ids)
        self.model = build_model(task.preset, task.seed)
        self.state = OuterState.fresh(params.flatten(self.model))
        self.models = [build_model(task.preset, task.seed) for _ in range(task.peers)]
        self.trainers = [
            InnerTrainer(m, lr=task.lr, weight_decay=task.weight_decay, warmup_steps=task.warmup_steps,
                         batch_size=task.batch_size, seq_len=task.seq_len)
            for m in self.models
        ]

    def train_peer(self, p: int, r: int) -> torch.Tensor:
        """H inner steps of peer p in round r from the shared θ; returns Δ = θ - θ_local."""
        from protocol.assignment import assign_pages

        t = self.task
        theta = self.state.theta
        self.params.load_flat(self.models[p], theta)
        pages = assign_pages(t.run_id, r, f"peer{p}", self.corpus.num_pages, t.pages_per_round, self.excluded)
        self.trainers[p].train(self.corpus.pages(pages), steps=t.inner_steps, seed=r * 1009 + p)
        return theta - self.params.flatten(self.models[p])

    def eval(self) -> float:
        from node.trainer.inner import eval_loss

        self.params.load_flat(self.model, self.state.theta)
        return eval_loss(self.model, self.eval_set, self.task.seq_len)


def load_corpus():
    from node.data.corpus import build_stdlib_corpus

    cache = Path(os.environ.get("GRADSWARM_BENCH_CACHE", Path(tempfile.gettempdir()) / "gradswarm-bench")) / "corpus"
    return build_stdlib_corpus(cache)


# --------------------------------------------------------------------------- 2. the 5% criterion


def overhead(entries: list[Entry], corpus, demo_peers: int = 3, also_steps: int = 10) -> dict:
    """Codec work of one demo round against that round's inner-loop compute."""
    from node.config import CodecSettings, RunSpec

    spec = RunSpec()
    task = Task(preset=spec.model.preset, peers=1, inner_steps=spec.train.inner_steps, lr=spec.train.lr,
                batch_size=spec.train.batch_size, seq_len=spec.train.seq_len,
                pages_per_round=spec.data.pages_per_round, warmup_steps=spec.train.warmup_steps)
    swarm = Swarm(task, corpus)
    swarm.train_peer(0, 0)  # warm-up round (first-call costs)

    def inner_seconds(steps: int, rounds: tuple[int, ...]) -> tuple[float, torch.Tensor]:
        swarm.task.inner_steps = steps
        best = float("inf")
        for r in rounds:
            t = time.perf_counter()
            delta = swarm.train_peer(0, r)
            best = min(best, time.perf_counter() - t)
        return best, delta

    demo_steps = task.inner_steps
    inner_also, _ = inner_seconds(also_steps, (1, 2, 3))
    inner, delta = inner_seconds(demo_steps, (4, 5))
    numel = delta.numel()
    default = CodecSettings()
    out = {
        "preset": task.preset,
        "numel": numel,
        "inner_steps": demo_steps,
        "demo_peers": demo_peers,
        "inner_seconds": inner,
        "per_round_work": f"error-feedback step (1 encode + 1 decode) + 1 decode at publish + {demo_peers - 1} peer decodes",
        "default_codec": default.name,
        "also": {"inner_steps": also_steps, "inner_seconds": inner_also},
        "codecs": [],
    }
    for entry in entries:
        if entry.codec == "fp32" or entry.codec.startswith("hivemind"):
            continue
        codec = make_codec(entry)

        def one_round():
            ef = ErrorFeedback()
            payload = ef.step(delta, codec, beta=entry.ef_beta if entry.ef_beta is not None else 1.0)
            for _ in range(demo_peers):
                codec.decode(payload, numel)

        one_round()
        seconds, _ = time_call(one_round, 5)
        out["codecs"].append({"name": entry.name, "seconds": seconds, "fraction_of_inner": seconds / inner,
                              "fraction_of_inner_also": seconds / inner_also})
    return out


# --------------------------------------------------------------------------- 3. training


def train_entry(entry: Entry, task: Task, corpus, shadow: Entry | None = None) -> dict:
    """One run of the task with ``entry``'s codec and recipe. ``shadow``: a codec that must
    decode to the very same vectors every round (its bytes are recorded too)."""
    from node.outer.aggregate import robust_mean
    from node.outer.optimizer import OuterOptimizer

    torch.manual_seed(task.seed)
    swarm = Swarm(task, corpus)
    numel = swarm.state.theta.numel()
    codec = make_codec(entry)
    twin = make_codec(shadow) if shadow else None
    feedback = [ErrorFeedback() for _ in range(task.peers)]
    outer = OuterOptimizer(lr=entry.outer_lr, momentum=entry.outer_momentum, nesterov=True)
    losses, sent, twin_sent, codec_seconds = [], [], [], 0.0
    start = time.perf_counter()
    for r in range(task.rounds):
        contributions, nbytes, twin_bytes = [], [], []
        for p in range(task.peers):
            delta = swarm.train_peer(p, r)
            if twin is not None:  # the buffer ErrorFeedback.step is about to encode, computed the same way
                old = feedback[p].residual
                e_before = delta.clone() if old is None else torch.add(delta, old, alpha=entry.ef_beta)
            t = time.perf_counter()
            if codec is None:
                vec, size = delta, 4 * numel
            elif entry.ef_beta is not None:
                payload = feedback[p].step(delta, codec, beta=entry.ef_beta)
                vec, size = codec.decode(payload, numel), len(payload)
            else:
                payload = codec.encode(delta)
                vec, size = codec.decode(payload, numel), len(payload)
            codec_seconds += time.perf_counter() - t
            if twin is not None:
                # Same selection, same quantizer: the twin must decode to the same vector.
                twin_payload = twin.encode(e_before)
                if not torch.equal(twin.decode(twin_payload, numel), vec):
                    raise AssertionError(f"{shadow.name} decoded differently from {entry.name} in round {r}")
                twin_bytes.append(len(twin_payload))
            contributions.append(vec)
            nbytes.append(size)
        outer.step(swarm.state, robust_mean(contributions))
        losses.append(swarm.eval())
        sent.append(sum(nbytes) / len(nbytes))
        twin_sent.append(sum(twin_bytes) / len(twin_bytes) if twin_bytes else 0)
        print(f"  {entry.name:<24} round {r:>3}  eval {losses[-1]:.4f}  bytes/peer {sent[-1]:>10,.0f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    result = {"name": entry.name, "numel": numel, "eval_loss": losses, "bytes_per_peer_round": sent,
              "codec_seconds": codec_seconds, "wall_seconds": time.perf_counter() - start}
    if shadow:
        result["shadow"] = {"name": shadow.name, "bytes_per_peer_round": twin_sent}
    return result


# --------------------------------------------------------------------------- output


def table(rows: list[dict], full: bool) -> str:
    head = f"{'codec':<22} {'bytes':>12} {'x fp32':>8} {'enc MB/s':>9} {'dec MB/s':>9} {'rel err':>8}"
    if full:
        head += f" {'B/peer/round':>13} {'final loss':>10} {'vs fp32':>8}"
    lines = [head, "-" * len(head)]
    base = next((r.get("final_eval_loss") for r in rows if r["name"] == "dense-fp32"), None)
    for r in rows:
        enc = f"{r['encode_MBps']:9.1f}" if r.get("encode_MBps") else f"{'-':>9}"
        dec = f"{r['decode_MBps']:9.1f}" if r.get("decode_MBps") else f"{'-':>9}"
        line = f"{r['name']:<22} {r['bytes_100m']:>12,d} {r['ratio_vs_fp32']:8.1f} {enc} {dec} {r['rel_error']:8.4f}"
        if full and "final_eval_loss" in r:
            rel = (r["final_eval_loss"] / base - 1) * 100 if base else float("nan")
            line += f" {r['bytes_per_peer_round']:>13,.0f} {r['final_eval_loss']:10.4f} {rel:+7.2f}%"
        lines.append(line)
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, task: Task) -> bool:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="codec figures and the 5%% check only (< 2 min)")
    ap.add_argument("--rounds", type=int, default=30, help="training rounds per entry (full mode)")
    ap.add_argument("--inner-steps", type=int, default=10, help="inner steps per round (full mode)")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--preset", default="base100m", help="model preset whose parameter shapes the codec figures use")
    ap.add_argument("--entries", default="", help="comma-separated subset of entry names (full mode)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    full = not args.quick
    entries = ENTRIES
    if args.entries:
        wanted = set(args.entries.split(","))
        entries = [e for e in ENTRIES if e.name in wanted]
    t0 = time.perf_counter()

    print(f"== codec figures on the parameter shapes of {args.preset}", flush=True)
    x, ntensors = synthetic_pseudo_gradient(args.preset)
    print(f"   {x.numel():,d} values in {ntensors} tensors", flush=True)
    extra = [Entry(HIVEMIND_NAMES[n], f"hivemind:{n}") for n in HIVEMIND_ONLY]
    figures = codec_figures(entries + extra, x, repeat=1 if args.quick else 2)
    fig_numel = x.numel()
    del x
    gc.collect()

    corpus = load_corpus()
    print("== the 5% criterion: codec work of one demo round vs its inner-loop compute", flush=True)
    ovh = overhead(entries, corpus, also_steps=args.inner_steps)
    for c in ovh["codecs"]:
        print(f"  {c['name']:<24} {c['seconds'] * 1000:8.1f} ms  = {100 * c['fraction_of_inner']:5.2f}% of "
              f"{ovh['inner_seconds']:.2f} s ({ovh['inner_steps']} steps, {ovh['preset']});  "
              f"{100 * c['fraction_of_inner_also']:5.2f}% of {ovh['also']['inner_seconds']:.2f} s "
              f"({ovh['also']['inner_steps']} steps)", flush=True)

    task = Task(peers=args.peers, rounds=args.rounds, inner_steps=args.inner_steps)
    runs: dict[str, dict] = {}
    if full:
        print(f"== training: {task.preset}, {task.peers} peers, {task.rounds} rounds x {task.inner_steps} inner steps",
              flush=True)
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
                runs[shadow.name] = {**run, "name": shadow.name,
                                     "bytes_per_peer_round": run["shadow"]["bytes_per_peer_round"],
                                     "shared_run_with": entry.name}

    by_name = {e.name: e for e in entries}
    rows = []
    for f in figures:
        row = {"name": f["name"], "ratio_vs_fp32": f["ratio_vs_fp32"], "encode_MBps": f["encode_MBps"],
               "decode_MBps": f["decode_MBps"], "rel_error": f["rel_error"], "bytes_100m": f["bytes"]}
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
    print(f"\nbytes, ratio, MB/s, rel err: one vector with the shapes of {args.preset} ({fig_numel:,d} values)"
          + (f"; B/peer/round and losses: {task.preset}, {task.peers} peers, {task.rounds} rounds x "
             f"{task.inner_steps} inner steps" if full else ""))
    print(table(rows, full))
    base = next((r for r in rows if r["name"] == "dense-fp32" and "final_eval_loss" in r), None)
    result = {
        "mode": "full" if full else "quick",
        "command": " ".join([Path(sys.executable).name, "benchmarks/compression.py"] + (argv or sys.argv[1:])),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "numpy": np.__version__},
        "codec_figures": {"preset_shapes": args.preset, "numel": fig_numel,
                          "data": "synthetic: Laplace x log-normal row scale per tensor"},
        "overhead": ovh,
        "codecs": rows,
        "wall_seconds": time.perf_counter() - t0,
    }
    if full:
        result["training"] = {
            "task": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in task.__dict__.items()},
            "dense_fp32_final_eval_loss": base["final_eval_loss"] if base else None,
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
