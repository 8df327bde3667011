"""A real `gradswarm node run`, alone on its dev chain, serving /status, /metrics and /healthz: its figures are its rounds.jsonl."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.lone_node import start_lone_node

ROUNDS = 3


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def consistent_view(node) -> tuple[dict, dict, dict]:
    """(/metrics, /status, /healthz) taken while no round finished in between."""
    while True:
        before = scrape(node.url)
        status = node.status()
        with urllib.request.urlopen(node.url + "/healthz", timeout=5) as response:
            health = json.loads(response.read())
        after = scrape(node.url)
        rounds = before[("gradswarm_node_rounds_total", ())]
        if rounds == after[("gradswarm_node_rounds_total", ())] == len(status["reports"]):
            return after, status, health
        time.sleep(0.2)


def test_a_running_node_serves_what_it_writes(tmp_path):
    node = start_lone_node(tmp_path, rounds=ROUNDS, round_seconds=12.0, inner_steps=8, boot_seconds=15.0)
    try:
        node.wait_for_reports(1, timeout=60)
        early = node.status()
        assert early["identity"]["hotkey"] == node.hotkey and early["identity"]["uid"] == 0
        assert early["identity"]["validator_permit"] and early["identity"]["peer_id"]
        node.wait_for_reports(ROUNDS - 1, timeout=60)
        metrics, status, health = consistent_view(node)
        seen = status["reports"]
        assert node.process.wait(timeout=60) == 0, node.log_tail()
    finally:
        node.stop()
    written = node.reports()
    assert len(written) >= ROUNDS and len(seen) >= ROUNDS - 1
    assert seen == written[: len(seen)]  # the same keys and values as the file's lines
    last = seen[-1]
    assert metrics[("gradswarm_node_train_loss", ())] == pytest.approx(last["train_loss"])
    assert metrics[("gradswarm_node_eval_loss", ())] == pytest.approx(last["eval_loss"])
    assert metrics[("gradswarm_node_inner_steps", ())] == last["inner_steps"]
    assert metrics[("gradswarm_node_in_sync", ())] == float(last["in_sync"]) == 1.0
    assert metrics[("gradswarm_node_manifest_entries", ())] == last["manifest_entries"]
    assert metrics[("gradswarm_node_in_manifest", ())] == float(node.hotkey in last["manifest_hotkeys"])
    assert metrics[("gradswarm_node_last_round_end_timestamp_seconds", ())] == pytest.approx(last["t_end"])
    served = sum(r["upload_payload_bytes"] for r in seen), sum(r["upload_state_bytes"] for r in seen)
    assert metrics[("gradswarm_node_bytes_sent_total", (("kind", "payload"),))] >= served[0]  # a lone node: nobody fetches
    assert metrics[("gradswarm_node_bytes_sent_total", (("kind", "state"),))] >= served[1]
    assert metrics[("gradswarm_node_resident_memory_bytes", ())] > 0
    assert metrics[("gradswarm_node_checkpoint_age_seconds", ())] >= 0
    assert metrics[("gradswarm_node_http_request_seconds_total", ())] > 0
    assert health == status["health"] | {"last_round_end_age_seconds": health["last_round_end_age_seconds"]}
    assert health["status"] == "ok" and health["round"] == last["round"]


@pytest.mark.slow
def test_sigterm_stops_the_node_and_its_dht_process_as_ctrl_c_does(tmp_path):
    """systemd stops a service with SIGTERM: the node shuts down (exit 130) and leaves no process behind."""
    import subprocess

    node = start_lone_node(tmp_path, rounds=ROUNDS + 3, round_seconds=12.0, inner_steps=8, boot_seconds=15.0)
    try:
        node.wait_for_reports(1, timeout=90)
        children = subprocess.run(["pgrep", "-P", str(node.process.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the node runs its DHT in a process of its own"
        node.process.terminate()
        assert node.process.wait(timeout=30) == 130
        deadline = time.time() + 10
        while time.time() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.2)
        assert not [pid for pid in children if _running(pid)]
    finally:
        node.stop()


def _running(pid: str) -> bool:
    """Alive and not a zombie waiting to be reaped by init."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
