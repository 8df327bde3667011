"""A long-lived DHT entry point: a hivemind DHT server with a stable peer id.

It stores nothing of its own; it lets nodes find each other. Its identity
key lives in a file so that its multiaddr, which operators publish, survives
restarts. It writes its multiaddrs to a file once it is reachable, so scripts
(the demo, tests, service managers) need not parse logs.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import hivemind

from node.fsutil import atomic_write

log = logging.getLogger(__name__)


def run_bootstrap(host: str, port: int, identity_path: Path, maddrs_file: Path | None, initial_peers: list[str]) -> None:
    identity_path.parent.mkdir(parents=True, exist_ok=True)
    dht = hivemind.DHT(
        initial_peers=initial_peers,
        host_maddrs=[f"/ip4/{host}/tcp/{port}"],
        identity_path=str(identity_path),
        start=True,
    )
    maddrs = [str(a) for a in dht.get_visible_maddrs()]
    log.info("bootstrap peer %s listening on %s", dht.peer_id, maddrs)
    if maddrs_file is not None:
        atomic_write(maddrs_file, json.dumps({"peer_id": str(dht.peer_id), "maddrs": maddrs}).encode())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        dht.shutdown()
