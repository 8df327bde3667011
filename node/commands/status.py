"""`gradswarm node status`: what a running node says about itself, from its /status and /healthz.

Exit status: 0 when the node answers and is healthy (ok or starting), 1 when it answers
stalled or out of sync, 2 when it does not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:9200"
ROWS = 12  # last rounds in the table


def add_parser(node_sub: argparse._SubParsersAction) -> None:
    status = node_sub.add_parser("status", help="show a running node's identity, round, health, peers and last rounds")
    status.add_argument("--url", default="", help=f"the node's status server (default: [node] http of --config, else {DEFAULT_URL})")
    status.add_argument("--config", default="", help="run.toml whose [node] http names the node's status server")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node's answer")
    status.set_defaults(func=cmd_node_status)


def node_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    if args.config:
        from node.config import load_run_file
        from node.status.address import url_of

        _, config = load_run_file(Path(args.config))
        if not config.http:
            raise ValueError(f"{args.config}: [node] http is empty, so that node serves no status")
        return url_of(config.http)
    return DEFAULT_URL


def fetch_json(url: str, timeout: float) -> dict:
    """GET `url` as JSON; a 503 from /healthz still carries its body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return json.loads(e.read())
        raise


def cmd_node_status(args: argparse.Namespace) -> int:
    url = node_url(args)
    try:
        status = fetch_json(url + "/status", args.timeout)
        health = fetch_json(url + "/healthz", args.timeout)
    except (OSError, ValueError) as e:  # refused, timed out, not JSON: nothing a node would answer
        reason = getattr(e, "reason", e)
        print(f"error: no node answers at {url} ({reason}); is it running with [node] http set? Try --url.", file=sys.stderr)
        return 2
    show(status, health, url)
    return 1 if health.get("status") in ("stalled", "out_of_sync") else 0


def _num(value, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _verdicts(verdicts: list) -> str:
    if not verdicts:
        return "-"
    passed = sum(1 for v in verdicts if v[2] == "pass")
    return f"{passed}/{len(verdicts)} pass"


def show(status: dict, health: dict, url: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=120)  # a pipe or a log: no 80-column squeeze
    ident, peers = status["identity"], status["peers"]
    colour = {"ok": "green", "starting": "yellow"}.get(health["status"], "red")
    console.print(f"[bold]{ident['run_name']}[/] node at {url}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    uid = "not registered" if ident["uid"] is None else f"uid {ident['uid']}"
    stake = "" if ident["stake"] is None else f", stake {ident['stake']:g}"
    facts.add_row("hotkey", f"{ident['hotkey']} ({uid}{stake}{', validator permit' if ident['validator_permit'] else ''})")
    facts.add_row("peer id", ident["peer_id"] or "-")
    facts.add_row("run id", ident["run_id"][:16] + "…")
    facts.add_row("round", f"{status['round']} ({status['phase']}, rounds of {status['round_seconds']:g} s)")
    age = health["last_round_end_age_seconds"]
    ended = "" if age is None else f", last round {health['round']} ended {age:.0f} s ago"
    facts.add_row("health", f"[{colour}]{health['status']}[/]{ended}")
    facts.add_row("sync", "in sync" if health["in_sync"] else "[red]out of sync[/]")
    facts.add_row("peers", f"{peers['connected']} connected, {peers['bound']} bound on chain")
    received = status.get("verdicts_received") or []
    if received:
        facts.add_row("verdicts received", _verdicts([(v["round"], v["validator"], v["verdict"]) for v in received]))
    facts.add_row("as of", time.strftime("%H:%M:%S", time.localtime(status["now"])))
    console.print(facts)
    reports = status["reports"][-ROWS:]
    if not reports:
        console.print("no round finished yet")
        return
    table = Table(title=f"last {len(reports)} rounds (manifest: its entries; in it: ours among them)", box=box.SIMPLE_HEAD)
    for name in ("round", "train loss", "eval loss", "manifest", "in it", "upload", "util.", "verdicts"):
        table.add_column(name, justify="left" if name in ("in it", "verdicts") else "right", no_wrap=True)
    for r in reports:
        table.add_row(
            str(r["round"]),
            _num(r.get("train_loss")),
            _num(r.get("eval_loss")),
            str(r.get("manifest_entries", 0)),
            "yes" if r["hotkey"] in r.get("manifest_hotkeys", ()) else "no",
            _bytes(r.get("upload_payload_bytes", 0) + r.get("upload_state_bytes", 0)),
            _num(r.get("compute_utilization"), "{:.0%}"),
            _verdicts(r.get("verdicts", [])),
        )
    console.print(table)
