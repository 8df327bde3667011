"""Mutation fuzzing of every decoder in `devnet.fuzz_targets`, seeded and reproducible.

    python -m devnet.fuzz_decoders --inputs 1000000 --seed 1 --out benchmarks/results/fuzz_decoders.json

Each target gets an equal share of the inputs. Its inputs come from its own
`random.Random(f"{seed}/{target}")`, so a target's stream is the same on every run with the
same seed and share (except the signature bytes of signed seeds, see fuzz_targets). An input
is a valid seed with one to four mutations stacked: bit flips, interesting bytes, truncation,
deletion, insertion, duplication, splicing with another seed, a length or count field
inflated to a huge value, a dictionary word of the target's format, and for msgpack inputs a
mutation of the decoded tree (a value of another type, a field dropped or added, garbage
nested deeper).

A contract violation is an exception outside the target's `allowed` (AssertionError: a
result that fails its check), an input that runs longer than `--hang-seconds`, or, on every
`--trace-every`th input, a traced peak allocation over 32 MiB + 64 bytes per input byte
(numpy and Python memory; torch's own allocator is not traced). The process runs under
an address-space limit, so an allocation of gigabytes fails as MemoryError, also a
violation. Unique violations (target, kind, exception, innermost frame) are written to the
JSON with their input, and `--replay FILE.json` runs them again. Exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import signal
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import msgpack

from devnet.fuzz_targets import Target, targets

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20)
HUGE = (1 << 8) - 1, (1 << 16) - 1, 1 << 31, (1 << 32) - 1, 1 << 40, (1 << 63) - 1, (1 << 64) - 1
TREE_VALUES: tuple[object, ...] = (
    None, True, False, -1, 0, 2**64 - 1, -(2**63), 2**63, 1.5, float("nan"), float("inf"), -0.0, "", "x" * 70, "pass",
    "\u00e9\U0001f600", b"", b"\x00" * 31, b"\x00" * 33, b"\xff" * 64, [], [[]], [[[[[[[[1]]]]]]]], [0] * 300,
)  # fmt: skip
DELIMITERS = frozenset(b'" =:/[{,\n')
ALLOC_SLACK, ALLOC_PER_BYTE = 32 << 20, 64


class Hang(BaseException):
    """An input ran past the time limit (a BaseException, so no `except Exception` in a decoder swallows it)."""


def _alarm(signum, frame) -> None:
    raise Hang


# ----------------------------------------------------------------------------- mutators


def flip_bits(rng: random.Random, data: bytearray, target: Target, seeds: list[bytes]) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data


def set_bytes(rng, data, target, seeds):
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256)
    return data


def truncate(rng, data, target, seeds):
    return data[: rng.randrange(len(data) + 1)]


def delete(rng, data, target, seeds):
    start = rng.randrange(len(data) + 1)
    return data[:start] + data[start + rng.randint(1, 16) :]


def insert(rng, data, target, seeds):
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytearray(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[at:]


def duplicate(rng, data, target, seeds):
    start = rng.randrange(len(data) + 1)
    piece = data[start : start + rng.randint(1, 64)]
    at = rng.randrange(len(data) + 1)
    return data[:at] + piece * rng.randint(1, 8) + data[at:]


def splice(rng, data, target, seeds):
    other = rng.choice(seeds)
    return data[: rng.randrange(len(data) + 1)] + bytearray(other[rng.randrange(len(other) + 1) :])


def inflate(rng, data, target, seeds):
    """A length or count field claiming far more than there is: a huge integer over 1-8 bytes, either byte order."""
    width = rng.choice((1, 2, 4, 8))
    value = rng.choice(HUGE) % (1 << (8 * width))
    at = rng.randrange(max(1, len(data) - width + 1))
    data[at : at + width] = value.to_bytes(width, rng.choice(("little", "big")))
    return data


def dictionary(rng, data, target, seeds):
    if not target.tokens:
        return flip_bits(rng, data, target, seeds)
    word = rng.choice(target.tokens)
    at = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:  # right after a delimiter: inside a quoted string, after a key's "=", after "GET "
        marks = [i + 1 for i, byte in enumerate(data) if byte in DELIMITERS]
        at = rng.choice(marks) if marks else at
    end = at + (rng.randint(0, len(word)) if rng.random() < 0.5 else 0)  # insert, or overwrite
    return data[:at] + bytearray(word) + data[end:]


def mutate_tree(rng, data, target, seeds):
    """Decode the msgpack, change one node of its tree, encode again (the bytes stay well-formed msgpack)."""
    try:
        tree = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except Exception:
        return flip_bits(rng, data, target, seeds)
    lists, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            lists.append(node)
            stack.extend(node)
    if not lists:
        return bytearray(msgpack.packb(rng.choice(TREE_VALUES)))
    node = rng.choice(lists)
    action = rng.randrange(5)
    if action == 0 and node:
        node[rng.randrange(len(node))] = rng.choice(TREE_VALUES)
    elif action == 1 and node:
        del node[rng.randrange(len(node))]
    elif action == 2:
        node.insert(rng.randrange(len(node) + 1), rng.choice(TREE_VALUES))
    elif action == 3 and node:
        node[rng.randrange(len(node))] = [node[rng.randrange(len(node))]]
    elif node:
        node.extend(node[: rng.randint(1, 4)])
    try:
        return bytearray(msgpack.packb(tree, use_bin_type=True, use_single_float=rng.random() < 0.2))
    except (OverflowError, ValueError):  # a float past binary32's range
        return bytearray(msgpack.packb(tree, use_bin_type=True))


MUTATORS: tuple[Callable, ...] = (flip_bits, set_bytes, truncate, delete, insert, duplicate, splice, inflate, dictionary)


def mutated(rng: random.Random, target: Target, seeds: list[bytes]) -> bytes:
    """One fuzz input: a seed, unchanged one time in twenty, else with one to four mutations stacked."""
    data = bytearray(rng.choice(seeds))
    if rng.random() < 0.05:
        return bytes(data)
    pool = MUTATORS + ((mutate_tree,) * 3 if target.msgpack else ())
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        data = rng.choice(pool)(rng, data, target, seeds)
    return bytes(data[: 1 << 20])


# ----------------------------------------------------------------------------- running


def run_one(target: Target, data: bytes, hang_seconds: float, trace: bool) -> tuple[str, BaseException | None]:
    """('', None) if `target` honoured its contract on `data`, else (kind of violation, exception)."""
    if trace:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, hang_seconds)
    try:
        target.call(data)
    except Hang as e:
        return "hang", e
    except target.allowed:
        pass
    except BaseException as e:
        return "exception", e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if trace and peak > ALLOC_SLACK + ALLOC_PER_BYTE * len(data):
        return "allocation", MemoryError(f"traced peak {peak} bytes for a {len(data)}-byte input")
    return "", None


def failure_key(name: str, kind: str, error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{name} {kind} {type(error).__name__} at {where}"


def fuzz(table: dict[str, Target], inputs: int, seed: int, hang_seconds: float, trace_every: int, log=print) -> dict:
    """Run `inputs` inputs spread evenly over `table`; the report that is written as JSON."""
    failures: dict[str, dict] = {}
    per_target = {}
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    for i, (name, target) in enumerate(table.items()):
        share = inputs // len(table) + (1 if i < inputs % len(table) else 0)
        rng, seeds, t0 = random.Random(f"{seed}/{name}"), target.seeds(), time.perf_counter()
        found = 0
        for n in range(share):
            data = mutated(rng, target, seeds)
            kind, error = run_one(target, data, hang_seconds, trace_every > 0 and n % trace_every == 0)
            if kind:
                key = failure_key(name, kind, error)
                found += key not in failures
                entry = failures.setdefault(
                    key, {"target": name, "kind": kind, "error": repr(error)[:300], "count": 0, "input": data.hex()}
                )
                entry["count"] += 1
                if entry["count"] == 1:
                    log(
                        f"VIOLATION {key}: {entry['error']}\n  reproduce: python -m devnet.fuzz_decoders --replay-hex {name} {data.hex()[:2000]}"
                    )
        seconds = time.perf_counter() - t0
        per_target[name] = {"inputs": share, "seconds": round(seconds, 2), "unique_failures": found}
        log(f"{name:42s} {share:8d} inputs {seconds:7.1f} s {found} new failures")
    return {
        "seed": seed,
        "inputs": inputs,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "hang_seconds": hang_seconds,
        "trace_every": trace_every,
        "targets": per_target,
        "unique_failures": len(failures),
        "failures": list(failures.values()),
    }


def replay(table: dict[str, Target], cases: list[tuple[str, bytes]], hang_seconds: float) -> int:
    bad = 0
    for name, data in cases:
        kind, error = run_one(table[name], data, hang_seconds, trace=True)
        print(f"{name}: {kind or 'ok'} {error!r}" if kind else f"{name}: ok")
        if error is not None:
            traceback.print_exception(error)
        bad += bool(kind)
    return 1 if bad else 0


def limit_address_space(extra_bytes: int) -> None:
    """Allow this process `extra_bytes` of address space beyond what it holds now: an allocation of gigabytes fails."""
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, resource.RLIM_INFINITY))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--only", default="", help="comma-separated target names (default: all)")
    p.add_argument("--hang-seconds", type=float, default=5.0)
    p.add_argument("--trace-every", type=int, default=64, help="trace allocations on every Nth input of a target (0: never)")
    p.add_argument("--memory-gib", type=float, default=4.0, help="address space allowed beyond the start-up footprint")
    p.add_argument("--replay", type=Path, help="run the failures of a report again")
    p.add_argument("--replay-hex", nargs=2, metavar=("TARGET", "HEX"), help="run one input again")
    args = p.parse_args(argv)
    logging.getLogger("hivemind").setLevel(logging.ERROR)  # unknown msgpack ext types are logged, one a line
    table = targets()
    for t in table.values():
        t.seeds()  # import and warm everything before the address space is limited
    limit_address_space(int(args.memory_gib * (1 << 30)))
    if args.replay_hex:
        return replay(table, [(args.replay_hex[0], bytes.fromhex(args.replay_hex[1]))], args.hang_seconds)
    if args.replay:
        report = json.loads(args.replay.read_text())
        return replay(table, [(f["target"], bytes.fromhex(f["input"])) for f in report["failures"]], args.hang_seconds)
    if args.only:
        table = {name: table[name] for name in args.only.split(",")}
    report = fuzz(table, args.inputs, args.seed, args.hang_seconds, args.trace_every)
    print(f"{args.inputs} inputs over {len(table)} targets in {report['wall_seconds']} s: {report['unique_failures']} unique failures")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if report["unique_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
