"""/healthz and /metrics over plain HTTP, from the sampler's latest snapshot.

Only GET on those two paths is served; anything else gets 404 or 405 and a
short body. Requests never reach the DHT process (see bootstrap.stats), and
each connection has a socket timeout so idle clients cannot pin threads.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bootstrap.stats import Snapshot

log = logging.getLogger(__name__)

STALE_AFTER = 30.0  # seconds without an answer from the DHT process before /healthz says 503


def health(snapshot: Snapshot) -> tuple[int, dict]:
    """HTTP status and JSON body of /healthz: 503 while the DHT process is not answering."""
    stats = snapshot.dht
    ok = stats is not None and snapshot.dht_age() < STALE_AFTER
    body = {
        "status": "ok" if ok else "stale",
        "peer_id": snapshot.peer_id,
        "uptime_seconds": round(snapshot.uptime, 1),
        "peers_connected": stats.peers_connected if stats else None,
        "routing_table_peers": stats.routing_table_peers if stats else None,
        "records_held": stats.records_stored + stats.records_cached if stats else None,
        "dht_sample_age_seconds": round(snapshot.dht_age(), 1) if stats else None,
    }
    return (200 if ok else 503), body


class SnapshotCollector:
    """prometheus_client collector: every metric comes from the snapshot of the moment."""

    def __init__(self, snapshot: Callable[[], Snapshot]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        yield GaugeMetricFamily("gradswarm_bootstrap_uptime_seconds", "Seconds since the bootstrap's DHT came up.", value=s.uptime)
        memory = GaugeMetricFamily(
            "gradswarm_bootstrap_resident_memory_bytes",
            "Resident memory by process: main, dht (hivemind's DHT process), p2pd.",
            labels=["process"],
        )
        for process, rss in sorted(s.resident_bytes.items()):
            memory.add_metric([process], rss)
        yield memory
        if s.bytes_in is not None and s.bytes_out is not None:
            traffic = CounterMetricFamily(
                "gradswarm_bootstrap_network_bytes",
                "TCP payload bytes of the p2pd daemon's sockets (kernel tcp_info; a lower bound, see bootstrap/netio.py).",
                labels=["direction"],
            )
            traffic.add_metric(["in"], s.bytes_in)
            traffic.add_metric(["out"], s.bytes_out)
            yield traffic
        if s.dht is None:
            return
        yield GaugeMetricFamily("gradswarm_bootstrap_dht_sample_age_seconds", "Age of the DHT figures below.", value=s.dht_age())
        yield GaugeMetricFamily("gradswarm_bootstrap_peers_connected", "Peers with a live libp2p connection.", value=s.dht.peers_connected)
        yield GaugeMetricFamily(
            "gradswarm_bootstrap_routing_table_peers",
            "DHT nodes in the routing table, replacement candidates included.",
            value=s.dht.routing_table_peers,
        )
        records = GaugeMetricFamily(
            "gradswarm_bootstrap_dht_records",
            "Unexpired DHT records held: stored (this node is among the nearest) or cached.",
            labels=["table"],
        )
        records.add_metric(["storage"], s.dht.records_stored)
        records.add_metric(["cache"], s.dht.records_cached)
        yield records
        yield CounterMetricFamily("gradswarm_bootstrap_records_accepted", "Records the run's validator accepted.", value=s.dht.accepted)
        rejected = CounterMetricFamily(
            "gradswarm_bootstrap_records_rejected",
            "Records the run's validator refused, by reason (protocol.wire.Rejection).",
            labels=["reason"],
        )
        for reason, count in s.dht.rejected.items():
            rejected.add_metric([reason], count)
        yield rejected


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    snapshot: Callable[[], Snapshot]
    registry: CollectorRegistry

    def handle_error(self, request, client_address) -> None:
        log.debug("HTTP client %s went away or misbehaved", client_address, exc_info=True)  # noqa: LOG014 (called in socketserver's except)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gradswarm-bootstrap"
    timeout = 10  # seconds a client may take to send its request

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            status, body = health(self.server.snapshot())
            self._reply(status, "application/json", json.dumps(body).encode())
        elif path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _not_allowed(self) -> None:
        self._reply(405, "text/plain; charset=utf-8", b"only GET is served\n", allow="GET")

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _reply(self, status: int, content_type: str, body: bytes, allow: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def serve(host: str, port: int, snapshot: Callable[[], Snapshot]) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; `shutdown()` and `server_close()` the result to stop."""
    server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    server.snapshot = snapshot
    server.registry = CollectorRegistry(auto_describe=False)
    server.registry.register(SnapshotCollector(snapshot))
    threading.Thread(target=server.serve_forever, name="bootstrap-http", daemon=True).start()
    return server


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets: [::1]:9100) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--http takes HOST:PORT, e.g. 127.0.0.1:9100, not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
