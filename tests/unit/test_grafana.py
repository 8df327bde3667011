"""deploy/grafana-dashboard.json: every panel queries metrics a node or a bootstrap really exports.

The exported names come from the code: the node's collector (node/status/metrics.py) and the
bootstrap's (bootstrap/web.py) are run over snapshots with every figure present, and the names
read back from their Prometheus text. Where node/status is not there, the contract's list stands in.
"""

import json
import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
METRIC = re.compile(r"\bgradswarm_[a-z0-9_]+\b")

# issue 16's contract, should node/status/metrics.py be missing
CONTRACT_NODE = {
    "gradswarm_node_" + name
    for name in [
        "round",
        "phase",
        "train_loss",
        "eval_loss",
        "inner_steps",
        "tokens_per_second",
        "compute_utilization",
        "peers_connected",
        "peers_bound",
        "manifest_entries",
        "in_manifest",
        "in_sync",
        "chain_outage",
        "checkpoint_age_seconds",
        "resident_memory_bytes",
        "peak_resident_memory_bytes",
        "gpu_memory_bytes",
        "last_round_end_timestamp_seconds",
        "uptime_seconds",
        "bytes_sent_total",
        "bytes_received_total",
        "verdicts_given_total",
        "verdicts_received_total",
        "resyncs_total",
        "chain_errors_total",
        "rounds_total",
        "http_request_seconds_total",
    ]
}


def exported(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def node_metrics() -> set[str]:
    try:
        from node.status.metrics import node_registry
        from node.status.snapshot import Identity, Resources, Snapshot, Totals
    except ImportError:
        return CONTRACT_NODE
    from node.round.report import RoundReport
    from protocol.schedule import RoundSchedule

    now = time.time()
    report = RoundReport(
        3, "h", now - 30, now - 10, train_loss=4.0, eval_loss=4.1, inner_steps=8, inner_seconds=5.0, compute_utilization=0.5
    )
    report.tokens_trained, report.manifest_entries, report.manifest_hotkeys = 4096, 2, ["h", "g"]
    snapshot = Snapshot(
        identity=Identity("h", 0, "peer", "00" * 32, "demo", 100.0, True),
        schedule=RoundSchedule(genesis=now - 100, round_seconds=20.0, overlap=True),
        started_at=now - 120,
        published_at=now,
        first_round_start=now - 100,
        reports=(json.loads(report.to_json()),),
        peers_connected=2,
        peers_bound=2,
        totals=Totals(
            bytes_sent={"payload": 1, "state": 2, "records": 3},
            bytes_received={"payload": 1, "state": 2, "records": 3},
            verdicts_given={"pass": 1, "fail": 1},
            verdicts_received={"pass": 1, "fail": 0},
            resyncs=1,
            chain_errors=1,
            rounds=4,
        ),
        resources=Resources(rss_bytes=1, peak_rss_bytes=2, gpu_memory_bytes=3, checkpoint_mtime=now - 5, chain_outage=False),
    )
    return exported(node_registry(lambda: snapshot, lambda: now, lambda: 0.25))


def bootstrap_metrics() -> set[str]:
    from bootstrap.stats import DHTStats, Snapshot
    from bootstrap.web import SnapshotCollector

    snapshot = Snapshot(
        peer_id="peer",
        started_at=time.time() - 60,
        dht=DHTStats(1, 2, 3, 4, 5, {"unregistered": 1}),
        dht_sampled_at=time.time(),
        bytes_in=10,
        bytes_out=20,
        resident_bytes={"main": 1, "dht": 2, "p2pd": 3},
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return exported(registry)


def panels() -> list[dict]:
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [panel] if panel["type"] != "row" else []
        found += [p for p in panel.get("panels", []) if p["type"] != "row"]  # a collapsed row keeps its panels inside
    return found


def queried() -> set[str]:
    return {name for p in panels() for t in p["targets"] for name in METRIC.findall(t["expr"])}


def test_the_dashboard_is_a_current_grafana_dashboard_on_a_prometheus_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["title"] and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_has_a_title_and_targets_on_the_datasource_variable():
    assert len(panels()) >= 20
    for panel in panels():
        assert panel["title"].strip(), panel
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert METRIC.search(target["expr"]), (panel["title"], target["expr"])
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}" and target["refId"]


def test_every_metric_queried_is_one_the_code_exports():
    node, bootstrap = node_metrics(), bootstrap_metrics()
    assert all(n.startswith("gradswarm_node_") for n in node) and all(n.startswith("gradswarm_bootstrap_") for n in bootstrap)
    unknown = queried() - node - bootstrap
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"


def test_every_metric_exported_has_a_panel():
    missing = (node_metrics() | bootstrap_metrics()) - queried()
    assert not missing, f"exported but on no panel: {sorted(missing)}"


def test_the_node_exports_what_the_contract_names():
    assert node_metrics() == CONTRACT_NODE
