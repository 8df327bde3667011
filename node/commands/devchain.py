"""`gradswarm devchain init|register|stake|show`: a dev chain file without Python.

A dev chain (:mod:`node.chain.devchain`) is one sqlite file; these commands
create one, register and stake hotkeys on it, and print what it holds, so
that a private swarm needs no demo script. Each command takes the file as
``--path FILE`` or as the ``[chain] path`` of a run file (``--config``, read
relative to the working directory, as ``gradswarm node run`` reads it).

Every input is treated as hostile: a bad address, amount or file ends the
command with one line ``error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from node.chain import ChainError, DevChain
from node.chain.devchain import check_address
from node.config import ConfigError

# An ss58 address of a 32-byte key is 47 or 48 characters; anything much longer
# is refused before it is decoded (or echoed back in an error).
_MAX_ADDRESS_CHARS = 64
# Bittensor's netuid and uid counts are u16; sqlite integers are 64-bit.
_MAX_U16 = 65535


class _Refused(Exception):
    """An input this command will not act on; its message is the whole answer."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `devchain` and its actions on the `gradswarm` sub-parsers."""
    where = argparse.ArgumentParser(add_help=False)
    source = where.add_mutually_exclusive_group(required=True)
    source.add_argument("--path", help="the dev chain file (sqlite)")
    source.add_argument("--config", help="a run.toml whose [chain] kind is 'dev': its path names the file")

    who = argparse.ArgumentParser(add_help=False)
    key = who.add_mutually_exclusive_group()
    key.add_argument("--hotkey", metavar="SS58", help="the hotkey's ss58 address")
    key.add_argument("--wallet", metavar="NAME", help="read the hotkey from this wallet (btcli's layout)")
    who.add_argument("--wallet-hotkey", default="default", metavar="NAME", help="hotkey name within --wallet (default: default)")
    who.add_argument("--wallet-root", default="", metavar="DIR", help="default: ~/.bittensor/wallets")

    parser = sub.add_parser("devchain", help="create and inspect an embedded dev chain (a private swarm without Python)")
    actions = parser.add_subparsers(dest="action", required=True)

    init = actions.add_parser("init", parents=[where], help="create a dev chain file (never overwrites one)")
    init.add_argument("--block-time", type=float, default=1.0, metavar="S", help="seconds per block (default 1)")
    init.add_argument("--max-validators", type=int, default=64, metavar="N", help="validator permits: the top N stakers (default 64)")
    init.add_argument("--netuid", type=int, default=1, metavar="N", help="subnet id the chain reports (default 1)")
    init.add_argument("--genesis-time", default=None, metavar="T", help="block 0: unix seconds or ISO 8601 with a zone (default now)")
    init.add_argument(
        "--shared", action="store_true", help="for a file on NFS that nodes of several hosts open: rollback journal instead of WAL"
    )
    init.set_defaults(func=_guarded(cmd_init))

    hotkey_help = " (or, with --config and neither --hotkey nor --wallet, the run file's [node] wallet and hotkey)"
    register = actions.add_parser("register", parents=[where, who], help="register a hotkey and print its uid" + hotkey_help)
    register.set_defaults(func=_guarded(cmd_register))

    stake = actions.add_parser("stake", parents=[where, who], help="add stake to a registered hotkey" + hotkey_help)
    stake.add_argument("--amount", required=True, metavar="X", help="stake to add: a finite number > 0")
    stake.set_defaults(func=_guarded(cmd_stake))

    show = actions.add_parser("show", parents=[where], help="print the chain's parameters and its neurons")
    show.set_defaults(func=_guarded(cmd_show))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with every refusal, of ours or of the chain's, as one `error:` line and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (_Refused, ChainError, ConfigError, OSError, sqlite3.Error, ValueError, OverflowError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    run.__name__ = run.__qualname__ = command.__name__
    run.__doc__ = command.__doc__
    return run


# Commands ----------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Create the chain file; refuse anything already at its path."""
    path = _chain_path(args)
    genesis = _genesis_time(args.genesis_time)
    if not 1 <= args.max_validators <= _MAX_U16:
        raise _Refused(f"--max-validators must be in [1, {_MAX_U16}], got {args.max_validators}")
    if not 0 <= args.netuid <= _MAX_U16:
        raise _Refused(f"--netuid must be in [0, {_MAX_U16}], got {args.netuid}")
    if not (math.isfinite(args.block_time) and args.block_time > 0):
        raise _Refused(f"--block-time must be a finite number of seconds > 0, got {args.block_time!r}")
    if path.is_dir():
        raise _Refused(f"{path} is a folder; give the chain file's path")
    if not path.parent.is_dir():
        raise _Refused(f"folder {path.parent} does not exist; create it first")
    try:
        chain = DevChain.create(
            path,
            block_time=args.block_time,
            max_validators=args.max_validators,
            netuid=args.netuid,
            genesis_time=genesis,
            shared=args.shared,
        )
    except FileExistsError:
        raise _Refused(f"{path} already exists; refusing to overwrite it (`gradswarm devchain show --path {path}` shows it)") from None
    print(f"created dev chain {chain.path}: genesis {_when(chain.genesis_time)}, block time {chain.block_time:g} s, netuid {chain.netuid}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    """Register the hotkey (again: the same uid) and print its uid."""
    hotkey = _hotkey(args)
    chain = _open(args)
    before = chain.neuron(hotkey)
    uid = chain.register(hotkey)
    print(f"uid {uid} {hotkey} ({'already registered' if before is not None else 'registered'})")
    return 0


def cmd_stake(args: argparse.Namespace) -> int:
    """Add ``--amount`` to a registered hotkey's stake."""
    amount = _amount(args.amount)
    hotkey = _hotkey(args)
    chain = _open(args)
    if chain.neuron(hotkey) is None:
        raise _Refused(f"hotkey {hotkey} is not registered; run `gradswarm devchain register` first")
    chain.add_stake(hotkey, amount)
    neuron = chain.neuron(hotkey)
    assert neuron is not None
    permit = "holds" if neuron.validator_permit else "does not hold"
    print(f"uid {neuron.uid} {hotkey} stake {neuron.stake:g} (+{amount:g}); {permit} a validator permit")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print the chain's parameters, then one row per neuron."""
    chain = _open(args)
    neurons, weights, commitments = chain.neurons(), chain.weights(), chain.commitments()
    print(f"dev chain      {chain.path}")
    print(f"genesis        {_when(chain.genesis_time)} ({chain.genesis_time:.3f})")
    print(f"block time     {chain.block_time:g} s")
    print(f"current block  {chain.block()}")
    print(f"netuid         {chain.netuid}")
    print(f"max validators {chain.max_validators}")
    print(f"neurons        {len(neurons)}")
    if not neurons:
        return 0
    rows = [("uid", "hotkey", "stake", "permit", "incentive", "weights set", "commitment")]
    for n in neurons:
        row = weights.get(n.uid)
        data = commitments.get(n.hotkey)
        rows.append(
            (
                str(n.uid),
                n.hotkey,
                f"{n.stake:g}",
                "yes" if n.validator_permit else "no",
                f"{n.incentive:.4f}",
                f"{len(row)} uids" if row else "-",
                f"{len(data)} B {data[:8].hex()}" if data is not None else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


# Inputs ------------------------------------------------------------------------


def _chain_path(args: argparse.Namespace) -> Path:
    """``--path``, or the ``[chain] path`` of ``--config``."""
    if args.path is not None:
        if not args.path.strip():
            raise _Refused("--path is empty")
        return Path(args.path)
    from node.config import load_run_file

    spec, _ = load_run_file(Path(args.config))
    if spec.chain.kind != "dev":
        raise _Refused(f'{args.config}: [chain] kind is {spec.chain.kind!r}; devchain commands need kind = "dev"')
    if not spec.chain.path:
        raise _Refused(f"{args.config}: [chain] has no path")
    return Path(spec.chain.path)


def _open(args: argparse.Namespace) -> DevChain:
    """The existing chain (a missing one is refused by DevFile, naming `devchain init`)."""
    path = _chain_path(args)
    if path.is_dir():
        raise _Refused(f"{path} is a folder, not a dev chain file")
    return DevChain(path)


def _hotkey(args: argparse.Namespace) -> str:
    """The ss58 address of ``--hotkey``, of ``--wallet``, or of the run file's [node] wallet."""
    from node.keys import DEFAULT_WALLET_ROOT, load_hotkey

    if args.hotkey is not None:
        hotkey = args.hotkey
        if len(hotkey) > _MAX_ADDRESS_CHARS:
            raise _Refused(f"--hotkey is {len(hotkey)} characters long; an ss58 address has 48")
        check_address(hotkey)
        return hotkey
    if args.wallet is not None:
        wallet, name, root = args.wallet, args.wallet_hotkey, args.wallet_root
    elif args.config is not None:
        from node.config import load_run_file

        _, node = load_run_file(Path(args.config))
        wallet, name, root = node.wallet, node.hotkey, args.wallet_root or node.wallet_root
    else:
        raise _Refused("name the hotkey: --hotkey SS58, or --wallet NAME [--wallet-hotkey NAME]")
    keypair = load_hotkey(wallet, name, Path(root).expanduser() if root else DEFAULT_WALLET_ROOT)
    check_address(keypair.ss58_address)
    return keypair.ss58_address


def _amount(text: str) -> float:
    try:
        amount = float(text)
    except ValueError:
        raise _Refused(f"--amount must be a number, got {text[:40]!r}") from None
    if not (math.isfinite(amount) and amount > 0):
        raise _Refused(f"--amount must be finite and > 0, got {text[:40]!r}")
    return amount


def _genesis_time(text: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 time that names its zone."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = _iso_time(text)
    if not (math.isfinite(value) and 0 <= value < 2**40):
        raise _Refused(f"--genesis-time must be a unix time >= 0, got {text[:40]!r}")
    return value


def _iso_time(text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _Refused(f"--genesis-time must be unix seconds or ISO 8601, got {text[:40]!r}") from None
    if when.tzinfo is None:
        raise _Refused(f"--genesis-time {text[:40]!r} names no time zone; add one, e.g. +00:00")
    return when.timestamp()


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
