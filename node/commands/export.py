"""`gradswarm export`: a state, from a checkpoint file or fetched from the swarm by its hash, as a Hugging Face folder.

``--state`` is a checkpoint file (``<data_dir>/state.safetensors``) or a state
hash (64 hex digits). A hash is fetched from ``--peer`` (repeatable) and the
peers the DHT knows through the run's ``[node] bootstrap`` list; the bytes must
parse as a state of the run's model and hash to the hash asked for.

Either way, the manifest that vouches for the state (the one of the round
before, whose ``result_state_hash`` is this state's hash) is looked up in the
DHT, its signature checked, and written into the model card; without one the
card and a warning say so. `gradswarm sample` opens states the same way
(:func:`open_state`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from node.checkpoint.export import export_state, vouching_manifest
from node.checkpoint.state import load_checkpoint, manifest_path
from node.config import RunSpec, load_run_file
from node.outer.optimizer import OuterState
from node.progress import Transfer
from node.trainer import params
from node.trainer.model import build_model
from protocol import wire
from protocol.messages import RoundManifest
from protocol.wire import ProtocolError

_HASH = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Opened:
    state: OuterState
    round: int
    manifest: RoundManifest | None  # signed for this run, resulting in this state; None if none was found
    source: str  # the checkpoint file, or the peer that served the state


def add_state_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="the run.toml the state belongs to (its preset, tokenizer, run id, [node] bootstrap)"
    )
    parser.add_argument("--state", required=True, help="a checkpoint file (e.g. <data_dir>/state.safetensors) or a state hash (64 hex)")
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="MADDR",
        help="a node to fetch the state and its manifest from, ending in /p2p/<peer id> (repeatable; [node] bootstrap is asked too)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a state as a Hugging Face model folder (transformers loads it as it is)")
    add_state_arguments(export)
    export.add_argument("--out", required=True, help="the folder to create")
    export.add_argument("--no-progress", action="store_true", help="no progress bars")
    export.set_defaults(func=cmd_export)


async def _open(spec: RunSpec, numel: int, state_arg: str, maddrs: list[str], progress: bool) -> Opened:
    from node.swarm.outside import NotHeld, Outside

    fetching = _HASH.fullmatch(state_arg) is not None
    saved = None if fetching else load_checkpoint(Path(state_arg), numel)
    if not fetching and saved is None:
        raise FileNotFoundError(f"no checkpoint at {state_arg} (and it is not a state hash of 64 hex digits)")
    if saved is not None:
        kept = vouching_manifest(_kept_manifest(Path(state_arg)), spec.run_id, saved[0].state_hash())
        if kept is not None or not maddrs:  # the node kept the manifest beside the checkpoint, or nobody to ask
            return Opened(saved[0], saved[1], kept, state_arg)
    try:
        outside = await Outside.connect(maddrs)
    except NotHeld as e:
        if saved is None:
            raise NotHeld(f"cannot fetch state {state_arg.lower()}: {e}") from None
        return Opened(saved[0], saved[1], None, state_arg)  # the manifest is optional; the state is here
    try:
        if saved is None:
            fetched = await outside.fetch_state(spec.run_id, bytes.fromhex(state_arg), numel, _bar(progress))
            state, round_, source = fetched.state, fetched.round, fetched.peer
        else:
            (state, round_), source = saved, state_arg
        manifest = vouching_manifest(await outside.manifests(spec.run_id, round_ - 1), spec.run_id, state.state_hash())
        return Opened(state, round_, manifest, source)
    finally:
        await outside.close()


def _kept_manifest(state_path: Path) -> list[RoundManifest]:
    """The manifest a node saved beside its checkpoint (node/round/finish.py), if it parses; checked by the caller."""
    try:
        return [wire.decode(manifest_path(state_path).read_bytes(), RoundManifest)]
    except (OSError, ProtocolError):
        return []


def _bar(enabled: bool) -> Transfer:
    """A bar per state download (a log line each way when stderr is no terminal; nothing if not `enabled`)."""
    return Transfer("fetch state", enabled=enabled)


def open_state(args: argparse.Namespace, progress: bool = True) -> tuple[RunSpec, Opened]:
    """The run spec of ``--config`` and the state ``--state`` names, with the manifest vouching for it."""
    spec, config = load_run_file(Path(args.config))
    numel = params.numel(build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size))
    maddrs = list(dict.fromkeys([*args.peer, *config.bootstrap]))
    opened = asyncio.run(_open(spec, numel, args.state, maddrs, progress))
    if opened.manifest is None:
        print(f"warning: no signed manifest vouching for state {opened.state.state_hash().hex()} was found", file=sys.stderr)
    return spec, opened


def cmd_export(args: argparse.Namespace) -> int:
    from node.swarm.outside import NotHeld

    if Path(args.out).exists():  # before a fetch that may take minutes
        print(f"error: {args.out} exists: export writes a new folder, never over one", file=sys.stderr)
        return 2
    try:
        spec, opened = open_state(args, progress=not args.no_progress)
    except NotHeld as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = export_state(spec, opened.state, opened.round, Path(args.out), opened.manifest, progress=not args.no_progress)
    signer = f", vouched for by {opened.manifest.hotkey}" if opened.manifest else ", no signed manifest"
    print(f"exported the state of round {opened.round} ({opened.state.state_hash().hex()[:16]}{signer}) from {opened.source} to {out}")
    return 0
