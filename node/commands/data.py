"""`gradswarm data build`: tokenize a run's documents into its corpus ahead of the first start, and name the digest to pin.

A node builds its corpus on first start anyway (node/data/sources.py); doing it
here first tells the run owner the digest to write into ``[data] digest`` and
how fast this machine tokenizes, and lets a lab fill a shared corpus cache
before the nodes start.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from node.config import load_run_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="the run's corpus").add_subparsers(dest="action", required=True)
    build = data.add_parser("build", help="tokenize the run's documents into pages (resumes an interrupted build) and print the digest")
    build.add_argument("--config", required=True, help="run.toml: its [model] tokenizer and [data] source")
    build.add_argument("--cache", default="", help="corpus folder (default: the [node] corpus_cache, else <data_dir>/corpus)")
    build.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from node.data.sources import open_corpus

    spec, config = load_run_file(Path(args.config))
    cache = Path(args.cache or config.corpus_cache or Path(config.data_dir) / "corpus")
    started = time.perf_counter()
    corpus = open_corpus(spec, cache)
    seconds = time.perf_counter() - started
    m = corpus.manifest
    print(f"corpus {m.name}: {m.num_pages:,} pages of {m.page_tokens} tokens ({m.num_tokens:,} tokens, {m.dtype}) in {corpus.path}")
    print(f'digest {m.digest}  (pin it: [data] digest = "{m.digest}")')
    print(f"{seconds:.1f} s ({m.num_tokens / seconds:,.0f} tokens/s; a cached corpus opens without reading the source)")
    return 0
