"""A node that cheats in one way: `python -m devnet.cheater --kind noise --config run.toml --rounds N`.

It is `gradswarm node run` with the honest Worker swapped for one of
devnet/adversaries.py, so everything but the cheat is the product's code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devnet.adversaries import KINDS, WORKERS
from node.cli import run_node, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devnet.cheater", description=__doc__)
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--config", required=True)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging(verbose=False)
    return run_node(Path(args.config), args.rounds, worker_class=WORKERS[args.kind])


if __name__ == "__main__":
    sys.exit(main())
