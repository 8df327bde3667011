"""`gradswarm demo`, plugged into the product's CLI through the `gradswarm.commands` entry point."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="a real swarm of several nodes on loopback with an embedded dev chain")
    demo.add_argument("--peers", type=int, default=3)
    demo.add_argument("--rounds", type=int, default=12)
    demo.add_argument("--out", default="demo-out")
    demo.add_argument("--round-seconds", type=float, default=None, help="default: 20 s for 3 nodes, more for more")
    demo.add_argument(
        "--adversaries",
        default="",
        metavar="KINDS",
        help="comma list of cheaters to add: copy,noise,wrong-pages,scaled,stale,few-steps,half-steps,negated,late,shrunk,forged-wrong-pages,forged-stale",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="seed of the nodes' identities, and so of the run's page assignment (default: the demo's usual identities)",
    )
    demo.add_argument(
        "--no-overlap", action="store_true", help="train half of each round and exchange in the other half (to measure what overlap gains)"
    )
    demo.add_argument(
        "--inner-steps", type=int, default=None, metavar="H", help="inner steps per round (default: as many as fill the train window here)"
    )
    demo.add_argument(
        "--data",
        choices=("stdlib", "jsonl", "parquet"),
        default="stdlib",
        help="stdlib: byte-level Python stdlib; jsonl, parquet: the stdlib as such a dataset, with a BPE tokenizer trained here (devnet/dataset.py)",
    )
    demo.add_argument("--late-join", type=int, default=0, metavar="ROUND", help="start the last node only in this round")
    demo.add_argument("--ranks-per-node", type=int, default=1, metavar="N", help="run each node as N torchrun ranks (gloo on CPU)")
    demo.add_argument(
        "--stop-bootstraps",
        type=int,
        default=0,
        metavar="ROUND",
        help="stop both bootstraps as this round begins (default: only the first, halfway)",
    )
    demo.add_argument(
        "--sybils", type=int, default=0, metavar="N", help="add N unregistered identities that flood the DHT and knock on every node"
    )
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from devnet.demo import run_demo

    adversaries = tuple(k for k in args.adversaries.split(",") if k)
    return run_demo(
        peers=args.peers,
        rounds=args.rounds,
        out=Path(args.out),
        round_seconds=args.round_seconds,
        late_rounds=args.late_join,
        adversaries=adversaries,
        bootstraps_down=args.stop_bootstraps,
        ranks_per_node=args.ranks_per_node,
        sybils=args.sybils,
        seed=args.seed,
        overlap=not args.no_overlap,
        inner_steps=args.inner_steps,
        data=args.data,
    )
