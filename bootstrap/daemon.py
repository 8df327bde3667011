"""A long-lived DHT entry point: a hivemind DHT server with a stable peer id and no model.

It lets nodes find each other and holds records like any other DHT node, so
it runs the nodes' own record validator for the run (run id + chain) and
stores nothing a node would reject. Its identity key lives in a file so that
the multiaddr operators publish survives restarts. It prints the multiaddrs
nodes should use and writes them to a JSON file for scripts (the demo,
tests, service managers), and can serve /healthz and /metrics.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import hivemind
from hivemind.utils.multiaddr import Multiaddr

from bootstrap.identity import ensure_identity
from bootstrap.stats import Sampler
from bootstrap.validation import CountingValidator
from bootstrap.web import serve
from node.chain import ChainView
from node.fsutil import atomic_write
from node.swarm.owned import OwnedDHT
from node.swarm.watch import rejoin

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/31337",)
REACHABILITY = ("auto", "public", "private")
LIVENESS_SECONDS = 5.0  # how often the main process checks that the DHT process is alive


@dataclass(frozen=True)
class BootstrapSettings:
    identity: Path
    listen: tuple[str, ...] = DEFAULT_LISTEN
    announce: tuple[str, ...] = ()  # public multiaddrs to advertise instead of the listening ones
    peers: tuple[str, ...] = ()  # other bootstraps to join
    http: tuple[str, int] | None = None  # (host, port) for /healthz and /metrics
    maddrs_file: Path | None = None
    reachability: str = "auto"  # "public"/"private" overrides libp2p's AutoNAT guess
    use_relay: bool = True  # libp2p circuit relay: lets nodes behind NAT be reached through relays
    use_auto_relay: bool = False  # only for a bootstrap that is itself behind NAT
    stats_interval: float = 5.0

    def __post_init__(self) -> None:
        for addr in self.listen + self.announce + self.peers:
            Multiaddr(addr)  # ValueError with the reason if malformed
        for addr in self.peers:
            if "/p2p/" not in addr:
                raise ValueError(f"bootstrap peer {addr} must end in /p2p/<peer id>")
        if not self.listen:
            raise ValueError("at least one --listen multiaddr is needed")
        if self.reachability not in REACHABILITY:
            raise ValueError(f"reachability must be one of {', '.join(REACHABILITY)}")


class Bootstrap:
    """The daemon's parts, started and stopped together (tests run it in process)."""

    def __init__(self, settings: BootstrapSettings, run_id: bytes, chain: ChainView, round_now: Callable[[], int] | None = None):
        self.settings = settings
        self.run_id = run_id
        self.round_now = round_now  # refuses records of rounds far from now, as the nodes do
        self.chain = chain
        self.dht: hivemind.DHT | None = None
        self.sampler: Sampler | None = None
        self.http: ThreadingHTTPServer | None = None

    def start(self) -> list[str]:
        """Start serving, then join the other bootstraps; the multiaddrs nodes should use.

        The other bootstraps are dialed after the DHT is up, not passed to hivemind
        as initial peers: hivemind refuses to start while none of those answers, and
        two bootstraps that list each other must each come up while the other is down.
        """
        s = self.settings
        peer_id = ensure_identity(s.identity)
        log.info("bootstrap identity %s from %s", peer_id, s.identity)
        self.dht = OwnedDHT(
            initial_peers=[],
            host_maddrs=list(s.listen),
            announce_maddrs=list(s.announce) or None,
            identity_path=str(s.identity),
            record_validators=[CountingValidator(self.run_id, self.chain, self.round_now)],
            use_relay=s.use_relay,
            use_auto_relay=s.use_auto_relay,
            force_reachability=None if s.reachability == "auto" else s.reachability,
            start=True,
            await_ready=True,
        )
        maddrs = [str(a) for a in self.dht.get_visible_maddrs()]
        if s.peers:
            answered = self.dht.run_coroutine(partial(rejoin, maddrs=s.peers))
            log.log(
                logging.INFO if answered else logging.WARNING,
                "%d of %d other bootstraps answered; the rest are re-dialed every 30 s",
                answered,
                len(s.peers),
            )
        self.sampler = Sampler(self.dht, str(self.dht.peer_id), s.stats_interval, s.peers)
        self.sampler.start()
        if s.http is not None:
            self.http = serve(*s.http, self.sampler.latest)
        if s.maddrs_file is not None:
            info = {"peer_id": str(self.dht.peer_id), "maddrs": maddrs, "http": self.http_url}
            atomic_write(s.maddrs_file, json.dumps(info).encode())
        return maddrs

    @property
    def http_url(self) -> str | None:
        if self.http is None:
            return None
        host, port = self.http.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def alive(self) -> bool:
        return self.dht is not None and self.dht.is_alive()

    def stop(self) -> None:
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
        if self.dht is not None:
            self.dht.shutdown()
            self.dht = None


def run_bootstrap(settings: BootstrapSettings, run_id: bytes, chain: ChainView, round_now: Callable[[], int] | None = None) -> int:
    """Serve until SIGINT/SIGTERM (exit 0) or until the DHT process dies (exit 1, for the service manager to restart)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bootstrap = Bootstrap(settings, run_id, chain, round_now)
    try:
        maddrs = bootstrap.start()
        print(f"bootstrap {bootstrap.dht.peer_id} serving run {run_id.hex()[:16]}; nodes join through:", flush=True)
        for addr in maddrs:
            print(f"  {addr}", flush=True)
        if bootstrap.http_url:
            print(f"health and metrics: {bootstrap.http_url}/healthz {bootstrap.http_url}/metrics", flush=True)
        while not stop.wait(LIVENESS_SECONDS):
            if not bootstrap.alive():
                log.error("the DHT process exited; stopping so that the service manager restarts us")
                return 1
        return 0
    finally:
        bootstrap.stop()
