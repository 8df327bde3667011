"""`gradswarm`: one binary for GPU owners, bootstrap maintainers and anyone trying it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from importlib.metadata import entry_points
from pathlib import Path

from node.commands import data as data_command
from node.commands import devchain as devchain_command
from node.commands import export as export_command
from node.commands import run as run_command
from node.commands import sample as sample_command
from node.commands import status as status_command
from node.config import ConfigError, NodeConfig, RunSpec


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("hivemind", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def open_chain(spec: RunSpec):
    from node.chain import DevChain

    if spec.chain.kind == "dev":
        return DevChain(spec.chain.path)
    if spec.chain.kind == "bittensor":
        from node.chain.bittensor_adapter import BittensorChain

        return BittensorChain(network=spec.chain.network, netuid=spec.chain.netuid)
    raise ConfigError(f"chain.kind must be 'dev' or 'bittensor', not {spec.chain.kind!r}")


def _wallet_root(config: NodeConfig) -> Path:
    from node.keys import DEFAULT_WALLET_ROOT

    return Path(config.wallet_root).expanduser() if config.wallet_root else DEFAULT_WALLET_ROOT


def cmd_node_run(args: argparse.Namespace) -> int:
    return run_node(Path(args.config), args.rounds, nproc=args.nproc, verbose=args.verbose)


def run_node(config_path: Path, rounds: int | None, nproc: int = 1, verbose: bool = False, worker_class: type | None = None) -> int:
    """`gradswarm node run`; `worker_class` replaces the honest Worker (the devnet's cheaters use it)."""
    from node.config import load_run_file
    from node.keys import load_hotkey
    from node.round.train import Worker
    from node.service import SwarmNode, resolve_device
    from node.swarm.owned import ClockSkew
    from node.trainer.distributed import RankFailure, join_ranks, launch, serve_rank

    if nproc > 1 and "LOCAL_RANK" not in os.environ:  # this process becomes torchrun's agent for the ranks
        more = [] if rounds is None else ["--rounds", str(rounds)]
        return launch(nproc, ["-v"] * verbose + ["node", "run", "--config", str(config_path), *more])
    spec, config = load_run_file(config_path)
    ranks = join_ranks(resolve_device(config.device), spec.schedule.round_seconds)
    if ranks is not None and ranks.rank > 0:  # only rank 0 talks to the swarm
        return serve_rank(spec, config, ranks)
    keypair = load_hotkey(config.wallet, config.hotkey, _wallet_root(config))
    chain = open_chain(spec)
    if chain.neuron(keypair.ss58_address) is None:
        print(f"hotkey {keypair.ss58_address} is not registered on the subnet", file=sys.stderr)
        return 2
    node = SwarmNode(spec, config, keypair, chain, ranks=ranks, worker_class=worker_class or Worker)
    try:
        import uvloop

        uvloop.run(until_signalled(node.run(rounds)))
        if node.ranked is not None:
            node.ranked.finish(node.states.state, node.states.round)
    except KeyboardInterrupt:
        return 130
    except RankFailure as e:
        print(f"error: {e}; the node stopped. Run it again to resume from its last checkpoint.", file=sys.stderr)
        return 1
    except ClockSkew as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


async def until_signalled(work: Coroutine) -> None:
    """Run `work`; SIGINT or SIGTERM (systemd's stop, a test's terminate) cancel it and raise
    KeyboardInterrupt here, once its cleanup (the swarm's shutdown, with the DHT's own process) ran.

    Why not Python's default handler: it raises KeyboardInterrupt in whatever frame is running. Inside
    a background task (a verification, found by the live fuzzer's seed 6) the task kept the exception,
    and asyncio logged it with a traceback at exit."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signalled: list[int] = []

    def stop(signum: int) -> None:
        signalled.append(signum)
        main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await work
    except asyncio.CancelledError:
        if signalled:
            raise KeyboardInterrupt from None
        raise


def cmd_keys_new(args: argparse.Namespace) -> int:
    from node.keys import DEFAULT_WALLET_ROOT, hotkey_path, new_hotkey

    root = Path(args.wallet_root).expanduser() if args.wallet_root else DEFAULT_WALLET_ROOT
    try:
        keypair = new_hotkey(args.name, args.hotkey, root, overwrite=args.overwrite)
    except FileExistsError as e:
        print(f"error: {e} (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    print(f"hotkey {keypair.ss58_address} written to {hotkey_path(args.name, args.hotkey, root)}")
    return 0


def cmd_bootstrap_run(args: argparse.Namespace) -> int:
    from bootstrap.daemon import DEFAULT_LISTEN, BootstrapSettings, run_bootstrap
    from bootstrap.web import parse_address
    from node.chain.clock import run_schedule
    from node.config import load_run_file

    spec, _ = load_run_file(Path(args.run))  # the run id and chain decide which records are valid
    settings = BootstrapSettings(
        identity=Path(args.identity),
        listen=tuple(args.listen or DEFAULT_LISTEN),
        announce=tuple(args.announce or ()),
        peers=tuple(args.peer or ()),
        http=parse_address(args.http) if args.http else None,
        maddrs_file=Path(args.maddrs_file) if args.maddrs_file else None,
        reachability=args.reachability,
        use_relay=not args.no_relay,
        use_auto_relay=args.auto_relay,
    )
    chain = open_chain(spec)
    schedule = run_schedule(spec, chain)
    return run_bootstrap(settings, spec.run_id, chain, lambda: schedule.round_at(time.time()))


def cmd_audit_replay(args: argparse.Namespace) -> int:
    import torch

    from node.audit.replay import Replayer, format_rows

    torch.set_num_threads(max(1, args.threads))  # summation order: other counts differ in the last bits
    from node.audit.store import AuditError, AuditStore

    store = AuditStore(Path(args.store))
    try:
        rows = Replayer(store).replay_all(round_=args.round, record=args.record)
    except AuditError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_rows(rows))
    bad = [r for r in rows if not r.agrees]
    print(f"{len(rows) - len(bad)} agree, {len(bad)} disagree or could not be replayed")
    return 1 if bad or not rows else 0


def cmd_audit_fetch(args: argparse.Namespace) -> int:
    from node.audit.fetch import fetch_audit
    from node.audit.store import AuditError

    try:
        first, last = (int(x) for x in args.rounds.split(":"))
    except ValueError:
        print("error: --rounds takes A:B, e.g. 0:9", file=sys.stderr)
        return 2
    try:
        count = asyncio.run(fetch_audit(args.peer, first, last, Path(args.store)))
    except (AuditError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"fetched {count} records of rounds {first}..{last} with their inputs into {args.store}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradswarm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run a swarm node").add_subparsers(dest="action", required=True)
    run = node.add_parser("run", help="join the run described by a run.toml and train")
    run.add_argument("--config", required=True, help="run.toml: the run spec plus a [node] table")
    run.add_argument("--rounds", type=int, default=None, help="stop after this round (default: run forever)")
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="ranks (GPUs) of this node: starts itself N times under torchrun; rank 0 talks to the swarm",
    )
    run.set_defaults(func=cmd_node_run)
    status_command.add_parser(node)

    keys = sub.add_parser("keys", help="hotkeys in the bittensor wallet layout").add_subparsers(dest="action", required=True)
    new = keys.add_parser("new", help="create a hotkey")
    new.add_argument("--name", required=True, help="wallet name (folder under the wallet root)")
    new.add_argument("--hotkey", default="default", help="hotkey name within the wallet")
    new.add_argument("--wallet-root", default="", help="default: ~/.bittensor/wallets")
    new.add_argument("--overwrite", action="store_true")
    new.set_defaults(func=cmd_keys_new)

    boot = sub.add_parser("bootstrap", help="a long-lived DHT entry point").add_subparsers(dest="action", required=True)
    brun = boot.add_parser("run", help="a DHT-only node (no model, no wallet) that stores only the run's valid records")
    brun.add_argument("--run", required=True, help="the run's run.toml: its spec gives the run id and chain ([node] is ignored)")
    brun.add_argument("--identity", default="bootstrap-p2p.key", help="private key file (created with mode 0600): keeps the peer id stable")
    brun.add_argument(
        "--listen", action="append", metavar="MADDR", help="multiaddr to listen on (repeatable; default /ip4/0.0.0.0/tcp/31337)"
    )
    brun.add_argument(
        "--announce", action="append", metavar="MADDR", help="public multiaddr to advertise instead of the listening ones (repeatable)"
    )
    brun.add_argument("--peer", action="append", metavar="MADDR", help="another bootstrap to join, ending in /p2p/<peer id> (repeatable)")
    brun.add_argument("--http", default="", metavar="HOST:PORT", help="serve /healthz and /metrics here, e.g. 127.0.0.1:9100")
    brun.add_argument("--maddrs-file", default="", help="also write the peer id and multiaddrs here as JSON")
    brun.add_argument(
        "--reachability",
        choices=("auto", "public", "private"),
        default="auto",
        help="override libp2p's AutoNAT guess ('public' on a host with a public address)",
    )
    brun.add_argument("--auto-relay", action="store_true", help="only behind NAT: find libp2p relays to become reachable")
    brun.add_argument("--no-relay", action="store_true", help="disable libp2p circuit relay")
    brun.set_defaults(func=cmd_bootstrap_run)

    audit = sub.add_parser("audit", help="replay recorded verifications").add_subparsers(dest="action", required=True)
    replay = audit.add_parser("replay", help="re-run the checks of an audit store and compare verdicts")
    replay.add_argument("--store", required=True, help="a node's audit folder (<data_dir>/audit)")
    replay.add_argument("--round", type=int, default=None)
    replay.add_argument("--record", default=None, help="a record digest (hex prefix)")
    replay.add_argument(
        "--threads", type=int, default=1, help="torch threads: the verifying node's count replays bit for bit (the demo's is 1)"
    )
    replay.set_defaults(func=cmd_audit_replay)
    fetch = audit.add_parser("fetch", help="copy a live node's records and their inputs over p2p")
    fetch.add_argument("--peer", required=True, help="the node's multiaddr, ending in /p2p/<peer id>")
    fetch.add_argument("--rounds", required=True, help="A:B, both included")
    fetch.add_argument("--store", required=True, help="local audit folder to fill")
    fetch.set_defaults(func=cmd_audit_fetch)

    for command in (run_command, data_command, devchain_command, export_command, sample_command):
        command.add_parser(sub)

    for command in entry_points(group="gradswarm.commands"):  # e.g. `demo`, from the devnet package
        command.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from node.chain import ChainError
    from node.data.corpus import CorpusError

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ConfigError, ChainError, CorpusError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
