"""The node's HTTP server: GET /, /status, /healthz and /metrics, in daemon threads, from the latest Snapshot.

The handler reads `board.current` (one immutable object the event loop replaces) and the clock,
never the live node: no request touches torch, the chain or the event loop, so scraping a busy
node costs it only the time the answer takes, which is counted in
gradswarm_node_http_request_seconds_total. Only GET is served; anything else gets 404 or 405. Each
connection has a socket timeout so idle clients cannot pin threads.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.status.address import parse_address, url_of
from node.status.metrics import node_registry
from node.status.snapshot import Snapshot

log = logging.getLogger(__name__)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
PLACEHOLDER = b"<!doctype html><title>gradswarm node</title><p>See <a href=/status>/status</a> and <a href=/metrics>/metrics</a>.</p>\n"


class Published(Protocol):
    current: Snapshot


class RequestTime:
    """Seconds spent handling requests, summed over the server's threads."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.requests = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds
            self.requests += 1

    def total(self) -> float:
        with self._lock:
            return self.seconds


def render_index() -> bytes:
    """The status page (node/status/page.py), or a placeholder while there is none."""
    try:
        from node.status.page import render_page
    except ImportError:
        return PLACEHOLDER
    page = render_page()
    return page.encode() if isinstance(page, str) else page


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    board: Published
    clock: Callable[[], float]
    spent: RequestTime

    def handle_error(self, request, client_address) -> None:
        log.debug("HTTP client %s went away or misbehaved", client_address, exc_info=True)  # noqa: LOG014 (called in socketserver's except)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _StatusServer6(StatusServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer
    server_version = "gradswarm-node"
    timeout = 10  # seconds a client may take to send its request

    _started: float | None = None

    def parse_request(self) -> bool:
        self._started = time.perf_counter()  # the request line is in: from here on the time is ours
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self._started is not None:
                self.server.spent.add(time.perf_counter() - self._started)
                self._started = None

    def do_GET(self) -> None:
        try:
            path = urlsplit(self.path).path
        except ValueError:  # e.g. "http://[::1/": an absolute URI whose IPv6 host is unclosed
            self._reply(400, TEXT, b"malformed request target\n")
            return
        server = self.server
        snapshot, now = server.board.current, server.clock()
        if path == "/healthz":
            health = snapshot.health(now)
            self._reply(health.http_status, JSON, json.dumps(health.to_dict()).encode())
        elif path == "/status":
            self._reply(200, JSON, json.dumps(snapshot.status(now)).encode())
        elif path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
        elif path in ("/", "/index.html"):
            self._reply(200, "text/html; charset=utf-8", render_index())
        else:
            self._reply(404, TEXT, b"not found: try /, /status, /healthz or /metrics\n")

    def _not_allowed(self) -> None:
        self._reply(405, TEXT, b"only GET is served\n", allow="GET")

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _reply(self, status: int, content_type: str, body: bytes, allow: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def serve(host: str, port: int, board: Published, clock: Callable[[], float] = time.time) -> StatusServer:
    """Serve in a daemon thread; `stop()` the result. OSError if the address cannot be bound."""
    server = (_StatusServer6 if ":" in host else StatusServer)((host, port), _Handler)
    server.board, server.clock, server.spent = board, clock, RequestTime()
    server.registry = node_registry(lambda: server.board.current, clock, server.spent.total)
    threading.Thread(target=server.serve_forever, name="status-http", daemon=True).start()
    return server


def start(http: str, board: Published) -> StatusServer | None:
    """The node's server on `[node] http`, or None when it is off or its port is taken (a warning, never a crash)."""
    if not http:
        return None
    host, port = parse_address(http)
    try:
        server = serve(host, port, board)
    except OSError as e:
        log.warning("status page not served: cannot listen on %s (%s); set [node] http to another port", http, e)
        return None
    bound = server.server_address[1]
    log.info("status page on %s (metrics at /metrics, health at /healthz)", url_of(f"{host}:{bound}"))
    return server
