"""What the operator view shows, as one immutable object: the /status body, the health verdict, the metrics' inputs.

A Snapshot is built on the node's event loop (node/status/live.py) and only ever read after that,
by the HTTP threads: nothing in it is mutated once published, and everything that depends on the
clock (the round and phase now, the health verdict, ages) is computed from it at request time, so
a node whose event loop is stuck still answers, and answers "stalled".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from protocol.schedule import RoundSchedule

REPORTS_KEPT = 64  # the last rounds /status lists
STALL_ROUNDS = 3  # round lengths without a finished round before /healthz says "stalled"
PHASES = ("waiting", "train", "reveal", "collect", "manifest", "settle")
UNHEALTHY = ("stalled", "out_of_sync")


@dataclass(frozen=True)
class Identity:
    hotkey: str
    uid: int | None
    peer_id: str  # base58, as in the node's multiaddrs; "" until the swarm is up
    run_id: str  # hex
    run_name: str
    stake: float | None
    validator_permit: bool


@dataclass(frozen=True)
class Health:
    status: str  # "ok" | "stalled" | "out_of_sync" | "starting"
    round: int | None  # the last round finished
    last_round_end_age_seconds: float | None
    in_sync: bool

    @property
    def http_status(self) -> int:
        return 503 if self.status in UNHEALTHY else 200

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Totals:
    """Cumulative since the node started (the counters of /metrics)."""

    bytes_sent: dict[str, int] = field(default_factory=dict)  # by kind: payload, state
    bytes_received: dict[str, int] = field(default_factory=dict)
    verdicts_given: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0})
    verdicts_received: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0})
    resyncs: int = 0  # rounds that ended out of the manifest's state, so the node had to sync
    chain_errors: int = 0  # failed chain calls (sampled from the guard's consecutive failures)
    rounds: int = 0


@dataclass(frozen=True)
class Resources:
    rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    gpu_memory_bytes: int | None = None  # only on CUDA
    checkpoint_mtime: float | None = None  # of state.safetensors; None before the first checkpoint
    chain_outage: bool | None = None


@dataclass(frozen=True)
class Snapshot:
    identity: Identity
    schedule: RoundSchedule
    started_at: float  # when the node started
    published_at: float
    first_round_start: float | None = None  # scheduled start of the first round this node runs; None before it joins
    reports: tuple[dict, ...] = ()  # RoundReports as rounds.jsonl has them, oldest first, at most REPORTS_KEPT
    peers_connected: int | None = None
    peers_bound: int | None = None
    verdicts_received: tuple[tuple[int, str, str], ...] = ()  # (round, validator, verdict) about this hotkey
    totals: Totals = field(default_factory=Totals)
    resources: Resources = field(default_factory=Resources)

    @property
    def last(self) -> dict | None:
        return self.reports[-1] if self.reports else None

    def clock(self, now: float) -> tuple[int, str]:
        """The round whose window is open at `now`, and the phase of that round's deadlines it is in."""
        r = self.schedule.round_at(now)
        if r < 0:
            return 0, "waiting"
        d = self.schedule.deadlines(r)
        for phase, until in zip(PHASES[1:], (d.train_end, d.reveal, d.collect_end, d.manifest_end), strict=False):
            if now < until:
                return r, phase
        return r, "settle"

    def health(self, now: float) -> Health:
        """Stalled when no round finished within STALL_ROUNDS round lengths (of the last round's end; before
        the first, of the first round's start, or of the node's own start if it has not joined yet)."""
        last = self.last
        if last is not None:
            since = float(last["t_end"])
        elif self.first_round_start is not None:
            since = self.first_round_start
        else:
            since = max(self.schedule.genesis, self.started_at)
        in_sync = bool(last["in_sync"]) if last is not None else True
        if now - since >= STALL_ROUNDS * self.schedule.round_seconds:
            status = "stalled"
        elif not in_sync:
            status = "out_of_sync"
        else:
            status = "starting" if last is None else "ok"
        age = round(now - since, 3) if last is not None else None
        return Health(status, last["round"] if last is not None else None, age, in_sync)

    def status(self, now: float) -> dict:
        """The /status body (docs: /work/shared16/contract.md, node/status/__init__.py)."""
        round_, phase = self.clock(now)
        return {
            "identity": asdict(self.identity),
            "now": now,
            "round": round_,
            "phase": phase,
            "round_seconds": self.schedule.round_seconds,
            "health": self.health(now).to_dict(),
            "peers": {"connected": self.peers_connected or 0, "bound": self.peers_bound or 0},
            "reports": list(self.reports),
            "verdicts_received": [{"round": r, "validator": v, "verdict": x} for r, v, x in self.verdicts_received],
        }


def totals_after(totals: Totals, report: dict) -> Totals:
    """`totals` with one more finished round."""
    given = dict(totals.verdicts_given)
    for _, _, verdict in report.get("verdicts", ()):
        given[verdict] = given.get(verdict, 0) + 1
    resynced = report.get("resynced") is not None
    return Totals(
        totals.bytes_sent,
        totals.bytes_received,
        given,
        totals.verdicts_received,
        totals.resyncs + resynced,
        totals.chain_errors,
        totals.rounds + 1,
    )
