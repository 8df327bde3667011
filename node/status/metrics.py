"""/metrics: a prometheus_client registry per node whose one collector reads the latest Snapshot at scrape time.

Gauges come from the snapshot and its last RoundReport; a figure the node does not have yet (no
round finished, no checkpoint, no CUDA) is left out rather than exported as a fake 0. Counters are
cumulative since the node started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from node.status.snapshot import PHASES, Snapshot

P = "gradswarm_node_"

# gauge name -> (help, what of the last report it shows)
REPORT_GAUGES: dict[str, tuple[str, Callable[[dict], float | None]]] = {
    "train_loss": ("Mean inner-step loss of the last round.", lambda r: r.get("train_loss")),
    "eval_loss": ("Held-out loss of the state held after the last round (nodes that evaluate).", lambda r: r.get("eval_loss")),
    "inner_steps": ("Inner steps the last round trained.", lambda r: r.get("inner_steps")),
    "tokens_per_second": (
        "Tokens trained per second inside the inner steps, last round.",
        lambda r: r["tokens_trained"] / r["inner_seconds"] if r.get("tokens_trained") and r.get("inner_seconds") else None,
    ),
    "compute_utilization": ("Seconds inside the inner steps over the round's length, last round.", lambda r: r.get("compute_utilization")),
    "manifest_entries": ("Contributions the last round's manifest named.", lambda r: r.get("manifest_entries")),
    "in_manifest": (
        "1 when the last round's manifest named our contribution.",
        lambda r: float(r["hotkey"] in r.get("manifest_hotkeys", ())),
    ),
    "in_sync": ("1 when the state held after the last round is the manifest's signed result.", lambda r: float(bool(r.get("in_sync")))),
    "last_round_end_timestamp_seconds": ("Unix time the last round finished.", lambda r: r.get("t_end")),
}


def _gauge(name: str, help_: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(P + name, help_, value=float(value))


def _by_label(name: str, help_: str, label: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(P + name, help_, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class NodeCollector:
    """Every gradswarm_node_ metric, from `snapshot()` and the wall clock at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot], clock: Callable[[], float], http_seconds: Callable[[], float]):
        self.snapshot, self.clock, self.http_seconds = snapshot, clock, http_seconds

    def collect(self) -> Iterator[Metric]:
        s, now = self.snapshot(), self.clock()
        round_, phase = s.clock(now)
        yield GaugeMetricFamily(P + "round", "The round whose window is open now, by the schedule.", value=round_)
        phases = GaugeMetricFamily(
            P + "phase", "1 for the phase of the open round's deadlines we are in, 0 for the others.", labels=["phase"]
        )
        for name in PHASES:
            phases.add_metric([name], float(name == phase))
        yield phases
        yield GaugeMetricFamily(P + "uptime_seconds", "Seconds since the node started.", value=now - s.started_at)
        last = s.last
        for name, (help_, value) in REPORT_GAUGES.items():
            yield from _gauge(name, help_, value(last) if last is not None else None)
        yield from _gauge("peers_connected", "Peers with a live libp2p connection.", s.peers_connected)
        yield from _gauge("peers_bound", "Other peers a registered hotkey has bound on chain.", s.peers_bound)
        res = s.resources
        outage = None if res.chain_outage is None else float(res.chain_outage)
        yield from _gauge("chain_outage", "1 while the chain cannot be reached.", outage)
        age = None if res.checkpoint_mtime is None else max(0.0, now - res.checkpoint_mtime)
        yield from _gauge("checkpoint_age_seconds", "Seconds since the local state checkpoint was written.", age)
        yield from _gauge("resident_memory_bytes", "Resident memory of the node and its processes (DHT, p2pd, ranks).", res.rss_bytes)
        yield from _gauge("peak_resident_memory_bytes", "Largest resident memory seen since start.", res.peak_rss_bytes)
        yield from _gauge("gpu_memory_bytes", "CUDA memory torch has allocated on the node's device.", res.gpu_memory_bytes)
        yield from self._counters(s)

    def _counters(self, s: Snapshot) -> Iterator[Metric]:
        t = s.totals
        yield _by_label("bytes_sent", "Bytes peers fetched from us, by kind.", "kind", t.bytes_sent)
        yield _by_label("bytes_received", "Bytes we fetched from peers, by kind.", "kind", t.bytes_received)
        yield _by_label("verdicts_given", "Verdicts this node reached about others' contributions.", "verdict", t.verdicts_given)
        yield _by_label("verdicts_received", "Verdicts other validators published about us.", "verdict", t.verdicts_received)
        yield CounterMetricFamily(P + "resyncs", "Rounds after which the node had to fetch the signed state.", value=t.resyncs)
        yield CounterMetricFamily(P + "chain_errors", "Chain calls that could not reach the chain.", value=t.chain_errors)
        yield CounterMetricFamily(P + "rounds", "Rounds finished since start.", value=t.rounds)
        yield CounterMetricFamily(
            P + "http_request_seconds", "Seconds the node spent answering HTTP requests: what scraping costs it.", value=self.http_seconds()
        )


def node_registry(snapshot: Callable[[], Snapshot], clock: Callable[[], float], http_seconds: Callable[[], float]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(snapshot, clock, http_seconds))
    return registry
