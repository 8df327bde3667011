"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer), beside the mutation driver.

    python -m devnet.fuzz_atheris --runs 40000 --seed 1          every target of devnet/fuzz_targets.py
    python -m devnet.fuzz_atheris --target wire --runs 100000    one target

The targets and their contract are devnet/fuzz_targets.py's (return a valid object or raise one of
`allowed`). The mutation driver (devnet/fuzz_decoders.py) explores around valid seeds; libFuzzer
instead keeps every input that reaches new code of protocol/ and node/ (instrumented at import)
and mutates those, so it finds the branches that only a chain of mutations opens. Each target runs
in its own process (libFuzzer exits when done), seeded from the target's valid inputs, with
`-seed` fixed: the same seed gives the same run. A contract violation exits non-zero with the
crashing input saved as crash-* in --work. Needs `pip install atheris` (not in the test extra: it
builds from source on some platforms).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fuzz_atheris.json"


def fuzz_one(name: str, runs: int, seed: int, work: Path) -> None:
    """In this process: libFuzzer on target `name` until `runs` inputs (it exits the process)."""
    import atheris

    with atheris.instrument_imports(include=["protocol", "node"]):
        from devnet.fuzz_targets import targets

        target = targets()[name]
    corpus = work / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(target.seeds()):
        (corpus / f"seed-{i}").write_bytes(data)

    def one(data: bytes) -> None:
        try:
            target.call(data)
        except target.allowed:
            pass

    atheris.Setup(
        [
            sys.argv[0],
            f"-runs={runs}",
            f"-seed={seed}",
            f"-artifact_prefix={work}/crash-{name}-",
            "-timeout=5",
            "-rss_limit_mb=4096",
            str(corpus),
        ],
        one,
    )
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devnet.fuzz_atheris", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", action="append", default=[], help="a target name (default: all)")
    p.add_argument("--runs", type=int, default=40_000, help="inputs per target")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("fuzz-out/atheris"), help="corpora and crashes")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child process's target
    args = p.parse_args(argv)
    if args.one:
        fuzz_one(args.one, args.runs, args.seed, args.work)
        return 0
    from devnet.fuzz_targets import targets

    names = args.target or list(targets())
    rows, failed = [], 0
    for name in names:
        started = time.time()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "devnet.fuzz_atheris",
                "--one",
                name,
                "--runs",
                str(args.runs),
                "--seed",
                str(args.seed),
                "--work",
                str(args.work),
            ],
            capture_output=True,
            text=True,
        )
        covered = [line for line in done.stderr.splitlines() if line.startswith("#") and "cov:" in line]
        rows.append(
            {
                "target": name,
                "runs": args.runs,
                "exit": done.returncode,
                "seconds": round(time.time() - started, 1),
                "last": covered[-1] if covered else "",
            }
        )
        failed += done.returncode != 0
        print(f"{name}: exit {done.returncode} in {rows[-1]['seconds']} s  {rows[-1]['last']}", flush=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
    from node.fsutil import atomic_write

    report = {"seed": args.seed, "inputs": args.runs * len(names), "targets": rows, "failed": failed}
    atomic_write(args.out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"{args.runs * len(names)} inputs over {len(names)} targets, {failed} failed; {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
