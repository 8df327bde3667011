"""`python -m devnet.faults`: run fault scenarios and keep their results in benchmarks/results/faults.json.

    python -m devnet.faults --all --seeds 1 2          every scenario, two seeds (make test-faults)
    python -m devnet.faults --scenario partition       one scenario
    python -m devnet.faults --table                    the README table of what the file holds

Results are merged into the file by (scenario, seed), so scenarios can be run one at a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from devnet.faults.hosts import missing_tools
from devnet.faults.scenarios import SCENARIOS

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "faults.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.faults", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], default=[])
    parser.add_argument("--all", action="store_true", help="every scenario")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--work", type=Path, default=Path("faults-out"), help="the swarms' folders")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(_load(args.out)))
        return 0
    chosen = SCENARIOS if args.all else [s for s in SCENARIOS if s.name in args.scenario]
    if not chosen:
        parser.error("name a --scenario or give --all")
    if why := missing_tools():
        print(f"error: the fault harness cannot run here: {why}", file=sys.stderr)
        return 2
    from devnet.faults.run import run_scenario

    failed = 0
    for scenario in chosen:
        for seed in args.seeds:
            print(f"faults: {scenario.name} (seed {seed}): {scenario.title}", flush=True)
            result = run_scenario(scenario, args.work, seed)
            failed += not result.passed
            rows = [r for r in _load(args.out) if (r["scenario"], r["seed"]) != (result.scenario, seed)]
            rows.append(dataclasses.asdict(result))
            _save(args.out, rows)
            print(f"faults: {scenario.name} seed {seed}: {'pass' if result.passed else 'FAIL'} in {result.wall_seconds:.0f} s", flush=True)
            for line in result.details:
                print(f"    {line}")
    print(table(_load(args.out)))
    return 1 if failed else 0


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"] if path.exists() else []


def _save(path: Path, rows: list[dict]) -> None:
    from node.fsutil import atomic_write

    order = {s.name: i for i, s in enumerate(SCENARIOS)}
    rows.sort(key=lambda r: (order.get(r["scenario"], 99), r["seed"]))
    atomic_write(path, (json.dumps({"results": rows}, indent=1) + "\n").encode())


def table(rows: list[dict]) -> str:
    """One line per scenario over its seeds: worst case of each column."""
    lines = [
        "| scenario | seeds | rounds lost (swarm / faulted node) | seconds to re-sync | data lost | pass |",
        "|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == s.name]
        if not mine:
            continue
        resync = [r["resync_seconds"] for r in mine if r["resync_seconds"] is not None]
        lines.append(
            f"| {s.title} | {len(mine)} | {max(r['swarm_rounds_lost'] for r in mine)} / {max(r['node_rounds_lost'] for r in mine)} "
            f"| {f'{min(resync):.0f}-{max(resync):.0f}' if resync else 'n/a'} | {max(r['data_lost'] for r in mine)} "
            f"| {'yes' if all(r['passed'] for r in mine) else 'no'} ({sum(r['passed'] for r in mine)}/{len(mine)}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
