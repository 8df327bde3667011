"""The demo's view of a running swarm: each node's status page, and a live table of its rounds.

On a terminal the demo shows a rich Live table below its one line per round,
redrawn every second from the nodes' /status endpoints (node/status, contract
in DESIGN), or from a node's rounds.jsonl while its endpoint does not answer
(not up yet, port taken, a node built without it). Off a terminal (CI, tests,
a pipe) there is no table: the one line per round is all, as before.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from node.progress import amount, on_terminal
from node.round.report import RoundReport, read_reports

STATUS_TIMEOUT = 0.8  # seconds a busy node gets to answer, so one slow node does not freeze the table
REFRESH_SECONDS = 1.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the node binds it a few seconds later; a clash is its logged warning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def page_url(http: str) -> str:
    """The status page of a node whose `[node] http` is `http` (HOST:PORT, loopback in the demo)."""
    return f"http://{http}/"


@dataclass
class Row:
    node: str
    round: int | None = None  # the round open now (status), or the last one reported (log)
    phase: str = ""
    reported: int | None = None  # the last round with a report
    train_loss: float | None = None
    eval_loss: float | None = None
    in_sync: bool | None = None
    upload_bytes: int | None = None  # of the last reported round: payload and state
    peers: int | None = None
    health: str = ""
    source: str = "—"  # "status" (the endpoint), "log" (rounds.jsonl) or "—" (neither yet)


def row_from_status(node: str, status: dict) -> Row:
    """A table row from a node's /status body; raises KeyError, TypeError or ValueError on another shape."""
    last = status["reports"][-1] if status.get("reports") else {}
    return Row(
        node=node,
        round=int(status["round"]),
        phase=str(status["phase"]),
        reported=last.get("round"),
        train_loss=last.get("train_loss"),
        eval_loss=last.get("eval_loss"),
        in_sync=last.get("in_sync") if last else (status.get("health") or {}).get("in_sync"),
        upload_bytes=last.get("upload_payload_bytes", 0) + last.get("upload_state_bytes", 0) if last else None,
        peers=(status.get("peers") or {}).get("connected"),
        health=str((status.get("health") or {}).get("status", "")),
        source="status",
    )


def row_from_log(node: str, reports: dict[int, RoundReport]) -> Row:
    """A table row from a node's round log (no phase, peers or health: the log does not have them)."""
    if not reports:
        return Row(node=node)
    last = reports[max(reports)]
    return Row(
        node=node,
        round=last.round,
        reported=last.round,
        train_loss=last.train_loss,
        eval_loss=last.eval_loss,
        in_sync=last.in_sync,
        upload_bytes=last.upload_payload_bytes + last.upload_state_bytes,
        source="log",
    )


def fetch_status(url: str, timeout: float = STATUS_TIMEOUT) -> dict | None:
    """The JSON body of `url`'s /status, or None if it does not answer with one in time."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=timeout) as reply:
            body = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def poll(nodes: dict[str, tuple[str, Path]], pool: ThreadPoolExecutor | None = None) -> list[Row]:
    """One row per node (name -> (page URL, rounds.jsonl)): from /status when it answers, else its log."""
    names = list(nodes)
    fetch = pool.map if pool is not None else map
    statuses = list(fetch(lambda name: fetch_status(nodes[name][0]), names))
    rows = []
    for name, status in zip(names, statuses, strict=True):
        try:
            rows.append(row_from_status(name, status) if status is not None else row_from_log(name, read_reports(nodes[name][1])))
        except (KeyError, TypeError, ValueError):  # an endpoint of another shape: the log then
            rows.append(row_from_log(name, read_reports(nodes[name][1])))
    return rows


def _number(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def render(rows: list[Row], title: str = "") -> Table:
    """The table, narrow enough for an 80-column terminal; "health" says "log" for a row read from rounds.jsonl."""
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column, justify in (
        ("node", "left"),
        ("round", "right"),
        ("phase", "left"),
        ("last", "right"),
        ("train", "right"),
        ("eval", "right"),
        ("sync", "center"),
        ("upload", "right"),
        ("peers", "right"),
        ("health", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        sync = "—" if r.in_sync is None else ("[green]yes[/]" if r.in_sync else "[red]no[/]")
        health = {"ok": "[green]ok[/]", "stalled": "[red]stalled[/]", "out_of_sync": "[red]no sync[/]"}.get(r.health, r.health)
        table.add_row(
            r.node,
            "—" if r.round is None else str(r.round),
            r.phase or "—",
            "—" if r.reported is None else str(r.reported),
            _number(r.train_loss),
            _number(r.eval_loss),
            sync,
            "—" if r.upload_bytes is None else amount(r.upload_bytes),
            "—" if r.peers is None else str(r.peers),
            health if r.source == "status" else r.source,
        )
    return table


class LiveTable:
    """The live round table while the demo runs (a context manager); off a terminal it does nothing.

    A thread polls the nodes every `refresh` seconds, so the demo's own loop (starting late joiners,
    stopping bootstraps) never waits on a slow node; lines the demo prints appear above the table.
    """

    def __init__(self, nodes: dict[str, tuple[str, Path]], title: str = "", tty: bool | None = None, refresh: float = REFRESH_SECONDS):
        self.nodes, self.title, self.refresh = dict(nodes), title, refresh
        self.tty = on_terminal(sys.stdout) if tty is None else tty
        self.live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, url: str, log: Path) -> None:
        self.nodes[name] = (url, log)

    def __enter__(self) -> LiveTable:
        if self.tty:
            self.live = Live(render([Row(n) for n in self.nodes], self.title), console=Console(), refresh_per_second=4)
            self.live.start()
            self._thread = threading.Thread(target=self._run, name="demo-live-table", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=len(self.nodes) + 1, thread_name_prefix="demo-status") as pool:
            while not self._stop.is_set():
                rows = poll(dict(self.nodes), pool)
                if self.live is not None and not self._stop.is_set():
                    self.live.update(render(rows, self.title))
                self._stop.wait(self.refresh)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.live is not None:
            self.live.stop()
