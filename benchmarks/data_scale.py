"""Data at scale: build a corpus of 200M+ tokens from local text, and compare a node's peak RSS on it with the stdlib's.

The claim under test (docs/DESIGN.md §4): a node maps its corpus and reads only
the pages it trains on and the eval pages, so its memory does not grow with the
dataset. The big corpus is this machine's installed Python packages' source
(real text, nothing downloaded), written as jsonl parts and read with `datasets`
like any run's files. Both corpora use the byte tokenizer so that the model,
and so everything else in the node's memory, is the same; the BPE build rate
is measured too, on the first parts only.

Each node runs alone on its own dev chain for a few rounds (real training,
evaluation, checkpoints); its peak RSS is what it reports in rounds.jsonl.

    python benchmarks/data_scale.py --out /tmp/data-scale    # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devnet import lone  # noqa: E402
from devnet.dataset import train_bpe  # noqa: E402
from node.config import DataSpec, ModelSpec, RunSpec, TrainSpec  # noqa: E402
from node.data.sources import open_corpus  # noqa: E402
from node.data.tokenizer import load_tokenizer  # noqa: E402
from node.fsutil import atomic_write  # noqa: E402

PART_BYTES = 64 << 20


@dataclass
class Build:
    tokenizer: str
    documents_bytes: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


@dataclass
class NodeRun:
    corpus: str
    corpus_tokens: int
    peak_rss_bytes: int
    rss_by_round: list[int]


def write_parts(out: Path, target_bytes: int) -> int:
    """Installed packages' .py files as jsonl parts of ~64 MB, in a fixed order, until `target_bytes` of text."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "done").is_file():
        return int((out / "done").read_text())
    root = Path(sysconfig.get_paths()["purelib"])
    files = sorted(p for p in root.rglob("*.py") if p.is_file())
    total, part, lines, size = 0, 0, [], 0
    for f in files:
        text = f.read_bytes().decode("utf-8", "replace")
        lines.append(json.dumps({"text": text, "path": str(f.relative_to(root))}))
        size += len(text)
        total += len(text)
        if size >= PART_BYTES or total >= target_bytes:
            atomic_write(out / f"part-{part:04d}.jsonl", ("\n".join(lines) + "\n").encode())
            part, lines, size = part + 1, [], 0
        if total >= target_bytes:
            break
    atomic_write(out / "done", str(total).encode())
    return total


def build(spec: RunSpec, cache: Path, text_bytes: int) -> Build:
    started = time.perf_counter()
    corpus = open_corpus(spec, cache)
    return Build(spec.model.tokenizer, text_bytes, corpus.manifest.num_tokens, time.perf_counter() - started)


def run_node(name: str, spec: RunSpec, work: Path, cache: Path, rounds: int) -> NodeRun:
    """One node alone on a fresh dev chain: `gradswarm node run` as a process, its own RSS reports read back."""
    run = lone.prepare(work / name, spec, cache, boot_seconds=25, round_seconds=20.0, http=False, seed=b"\x11" * 32)
    process = lone.start(run, rounds - 1, work / name / "node.log")
    if process.wait(timeout=120 + 30 * rounds) != 0:
        raise RuntimeError(f"the node on {name} failed: see {work / name / 'node.log'}")
    reports = [json.loads(line) for line in (run.data_dir / "rounds.jsonl").read_text().splitlines()]
    corpus = open_corpus(run.spec, cache)
    return NodeRun(name, corpus.manifest.num_tokens, max(r["peak_rss_bytes"] for r in reports), [r["rss_bytes"] for r in reports])


def plot(runs: list[NodeRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in runs:
        ax.plot([b / 2**20 for b in run.rss_by_round], marker="o", label=f"{run.corpus} ({run.corpus_tokens / 1e6:.0f}M tokens)")
    ax.set_xlabel("round")
    ax.set_ylabel("node RSS (MiB)")
    ax.set_title("A node's memory does not follow its corpus")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/gradswarm-data-scale")
    parser.add_argument("--text-mb", type=int, default=240, help="text to collect (byte level: one token per byte)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "data_scale"))
    args = parser.parse_args()
    out = Path(args.out)
    text_bytes = write_parts(out / "text", args.text_mb << 20)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    train = TrainSpec(inner_steps=30)
    big = RunSpec(data=DataSpec(source="files", path=str(out / "text" / "*.jsonl")), train=train)
    builds = [build(big, out / "cache", text_bytes)]
    first = sorted((out / "text").glob("*.jsonl"))[:1]
    sample = [json.loads(line)["text"] for line in first[0].read_text().splitlines()[:4000]]
    tokenizer = load_tokenizer(str(train_bpe(sample, 16384, out / "bpe" / "tokenizer.json")))
    bpe = RunSpec(
        model=ModelSpec(preset="small", tokenizer=tokenizer.name, tokenizer_digest=tokenizer.digest, vocab_size=tokenizer.vocab_size),
        data=DataSpec(source="files", path=str(first[0])),
    )
    builds.append(build(bpe, out / "cache-bpe", first[0].stat().st_size))
    for b in builds:
        print(f"build ({b.tokenizer}): {b.tokens:,} tokens in {b.seconds:.1f} s = {b.tokens_per_second:,.0f} tokens/s")
    runs = []
    for repeat in range(args.repeats):
        for name, spec in (("stdlib", RunSpec(train=train)), ("site-packages", big)):
            run = run_node(f"{name}-{repeat}", spec, out / "nodes", out / "cache", args.rounds)
            runs.append(run)
            print(f"node on {name} ({run.corpus_tokens:,} tokens): peak RSS {run.peak_rss_bytes / 2**20:.0f} MiB")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "builds": [asdict(b) | {"tokens_per_second": b.tokens_per_second} for b in builds],
        "nodes": [asdict(r) for r in runs],
    }
    atomic_write(results.with_suffix(".json"), json.dumps(summary, indent=2).encode())
    plot(runs, results.with_suffix(".png"))
    print(f"saved {results.with_suffix('.json')} and {results.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
