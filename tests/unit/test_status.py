"""The node's operator view: /metrics, /healthz, /status from a StatusBoard over a fake node, on a real loopback server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from node.chain import ChainHealth
from node.config import ConfigError, NodeConfig, parse_run_file
from node.round.report import RoundReport
from node.status import server as status_server
from node.status.live import StatusBoard
from node.status.snapshot import PHASES, REPORTS_KEPT
from protocol.schedule import RoundSchedule
from tests.support import wait_for

L = 10.0  # round_seconds
GENESIS = 1000.0
HOTKEY = "5Fme"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_node(tmp_path, reachable: bool = True) -> SimpleNamespace:
    health = ChainHealth(reachable=reachable, failures=0 if reachable else 2, retry_in=0.0, last_error="", pending_writes=())
    neuron = SimpleNamespace(uid=3, stake=12.5, validator_permit=True)
    return SimpleNamespace(
        hotkey=HOTKEY,
        run_id=bytes(range(32)),
        spec=SimpleNamespace(name="status-test"),
        schedule=RoundSchedule(genesis=GENESIS, round_seconds=L, overlap=True),
        swarm=SimpleNamespace(bytes_served={"payload": 0, "state": 0}, bytes_received={"payload": 0, "state": 0}, dht=None, p2p=None),
        chain=SimpleNamespace(health=lambda: health, neuron=lambda hotkey: neuron),
        memory=SimpleNamespace(last=300 << 20, peak=400 << 20),
        device=torch.device("cpu"),
        files=SimpleNamespace(state=tmp_path / "state.safetensors"),
        scores=SimpleNamespace(received=lambda hotkey: [(0, "5Val", "pass"), (1, "5Val", "fail")]),
    )


def report(r: int, **fields) -> RoundReport:
    base = dict(
        t_start=GENESIS + r * L,
        t_end=GENESIS + (r + 2) * L,
        train_loss=5.0 - r / 10,
        eval_loss=5.5 - r / 10,
        inner_steps=12,
        inner_seconds=4.0,
        compute_utilization=0.4,
        tokens_trained=4096,
        manifest_entries=2,
        manifest_hotkeys=[HOTKEY, "5Other"],
        upload_payload_bytes=1000 + r,
        upload_state_bytes=50_000 * r,
        verdicts=[(r, "5Other", "pass"), (r, "5Bad", "fail")] if r else [(r, "5Other", "pass")],
    )
    return RoundReport(round=r, hotkey=HOTKEY, **{**base, **fields})


@pytest.fixture
def served(tmp_path):
    """(node, board, clock, url) with rounds 0..2 finished and the server on a free loopback port."""
    node = fake_node(tmp_path)
    clock = Clock(GENESIS - 5)
    board = StatusBoard(node, clock)
    board.joined(0)
    reports = [report(r) for r in range(3)]
    for rep in reports:
        node.swarm.bytes_served["payload"] += rep.upload_payload_bytes  # as the node's counters stand at report time
        node.swarm.bytes_served["state"] += rep.upload_state_bytes
        clock.now = rep.t_end
        board.round_finished(rep)
    clock.now = reports[-1].t_end + 1.0
    server = status_server.serve("127.0.0.1", 0, board, clock)
    yield node, board, clock, reports, f"http://127.0.0.1:{server.server_address[1]}"
    server.stop()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    status, content_type, body = get(url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_equal_the_reports_they_were_built_from(served):
    node, _, clock, reports, url = served
    m = scrape(url)
    last = reports[-1]
    assert m[("gradswarm_node_train_loss", ())] == pytest.approx(last.train_loss)
    assert m[("gradswarm_node_eval_loss", ())] == pytest.approx(last.eval_loss)
    assert m[("gradswarm_node_inner_steps", ())] == 12
    assert m[("gradswarm_node_tokens_per_second", ())] == pytest.approx(4096 / 4.0)
    assert m[("gradswarm_node_manifest_entries", ())] == 2
    assert m[("gradswarm_node_in_manifest", ())] == 1
    assert m[("gradswarm_node_in_sync", ())] == 1
    assert m[("gradswarm_node_last_round_end_timestamp_seconds", ())] == pytest.approx(last.t_end)
    sent = sum(r.upload_payload_bytes for r in reports), sum(r.upload_state_bytes for r in reports)
    assert m[("gradswarm_node_bytes_sent_total", (("kind", "payload"),))] == sent[0]
    assert m[("gradswarm_node_bytes_sent_total", (("kind", "state"),))] == sent[1]
    given = [v for r in reports for _, _, v in r.verdicts]
    assert m[("gradswarm_node_verdicts_given_total", (("verdict", "pass"),))] == given.count("pass") == 3
    assert m[("gradswarm_node_verdicts_given_total", (("verdict", "fail"),))] == given.count("fail") == 2
    assert m[("gradswarm_node_rounds_total", ())] == 3
    assert m[("gradswarm_node_resyncs_total", ())] == 0
    assert m[("gradswarm_node_round", ())] == node.schedule.round_at(clock.now) == 4
    phases = {dict(k[1])["phase"]: v for k, v in m.items() if k[0] == "gradswarm_node_phase"}
    assert set(phases) == set(PHASES) and phases["train"] == 1 and sum(phases.values()) == 1
    assert m[("gradswarm_node_peak_resident_memory_bytes", ())] == 400 << 20
    assert m[("gradswarm_node_chain_outage", ())] == 0
    # no figure yet is no sample, not a fake 0: no checkpoint, no CUDA, no swarm to count peers in
    names = {name for name, _ in m}
    assert not names & {"gradswarm_node_checkpoint_age_seconds", "gradswarm_node_gpu_memory_bytes", "gradswarm_node_peers_connected"}


def test_a_round_that_resynced_or_fell_out_of_sync_shows(served):
    _, board, clock, _, url = served
    clock.now += 5
    board.round_finished(report(3, t_end=clock.now, resynced=False, in_sync=False, train_loss=None))
    m = scrape(url)
    assert m[("gradswarm_node_resyncs_total", ())] == 1
    assert m[("gradswarm_node_in_sync", ())] == 0
    assert ("gradswarm_node_train_loss", ()) not in m  # the last round did not train
    status, _, body = get(url + "/healthz")
    assert status == 503 and json.loads(body) == {"status": "out_of_sync", "round": 3, "last_round_end_age_seconds": 0.0, "in_sync": False}


def test_healthz_is_ok_until_three_round_lengths_pass_without_a_round(served):
    _, _, clock, reports, url = served
    status, content_type, body = get(url + "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "round": 2, "last_round_end_age_seconds": 1.0, "in_sync": True}
    clock.now = reports[-1].t_end + 3 * L - 0.5
    assert get(url + "/healthz")[0] == 200
    clock.now = reports[-1].t_end + 3 * L + 0.5  # the event loop published nothing since: the node is stuck
    status, _, body = get(url + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stalled"


def test_healthz_says_starting_before_the_first_round_then_stalled(tmp_path):
    clock = Clock(GENESIS - 20)
    board = StatusBoard(fake_node(tmp_path), clock)
    server = status_server.serve("127.0.0.1", 0, board, clock)
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        status, _, body = get(url)
        assert status == 200 and json.loads(body) == {
            "status": "starting",
            "round": None,
            "last_round_end_age_seconds": None,
            "in_sync": True,
        }
        board.joined(0)
        clock.now = GENESIS + 3 * L - 1
        assert get(url)[0] == 200
        clock.now = GENESIS + 3 * L + 1
        assert get(url)[0] == 503
    finally:
        server.stop()


def test_status_matches_the_contract(served):
    node, _, clock, reports, url = served
    status, content_type, body = get(url + "/status")
    assert (status, content_type) == (200, "application/json")
    s = json.loads(body)
    assert set(s) == {"identity", "now", "round", "phase", "round_seconds", "health", "peers", "reports", "verdicts_received"}
    assert s["identity"] == {
        "hotkey": HOTKEY,
        "uid": None,  # the chain is read in the background (refresh), not on a request
        "peer_id": "",
        "run_id": node.run_id.hex(),
        "run_name": "status-test",
        "stake": None,
        "validator_permit": False,
    }
    assert (s["now"], s["round"], s["phase"], s["round_seconds"]) == (clock.now, 4, "train", L)
    assert s["health"]["status"] == "ok" and s["peers"] == {"connected": 0, "bound": 0}
    assert s["reports"] == [json.loads(r.to_json()) for r in reports]  # the same keys and values as rounds.jsonl
    assert s["verdicts_received"] == []


def test_refresh_reads_identity_and_verdicts_received(served):
    _, board, _, _, url = served
    asyncio.run(board.refresh())
    board.publish()
    s = json.loads(get(url + "/status")[2])
    assert (s["identity"]["uid"], s["identity"]["stake"], s["identity"]["validator_permit"]) == (3, 12.5, True)
    assert s["verdicts_received"] == [
        {"round": 0, "validator": "5Val", "verdict": "pass"},
        {"round": 1, "validator": "5Val", "verdict": "fail"},
    ]
    asyncio.run(board.refresh())  # the same verdicts read again are not counted twice
    m = scrape(url)
    assert m[("gradswarm_node_verdicts_received_total", (("verdict", "pass"),))] == 1
    assert m[("gradswarm_node_verdicts_received_total", (("verdict", "fail"),))] == 1


def test_only_the_last_reports_are_kept(tmp_path):
    clock = Clock(GENESIS)
    board = StatusBoard(fake_node(tmp_path), clock)
    for r in range(REPORTS_KEPT + 5):
        board.round_finished(report(r))
    rounds = [rep["round"] for rep in board.current.reports]
    assert rounds == list(range(5, REPORTS_KEPT + 5))
    assert board.current.totals.rounds == REPORTS_KEPT + 5


def test_other_methods_and_paths_are_refused(served):
    *_, url = served
    assert get(url + "/nope")[0] == 404
    assert get(url + "/")[0] == 200 and get(url + "/")[1].startswith("text/html")
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        request = urllib.request.Request(url + "/status", method=method, data=b"x" if method in ("POST", "PUT") else None)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 405 and caught.value.headers["Allow"] == "GET"


def test_handling_time_counter_grows_with_requests(served):
    *_, url = served
    first = scrape(url)[("gradswarm_node_http_request_seconds_total", ())]
    for _ in range(5):
        get(url + "/status")
    assert first == 0.0  # a request is counted once answered: the first scrape of a fresh server sees none
    # a request's time is added after its last byte is written, so the client can be a moment ahead: poll
    key = ("gradswarm_node_http_request_seconds_total", ())
    second = wait_for(lambda: (v := scrape(url)[key]) > first and v, timeout=5, what="the /status requests counted")
    wait_for(lambda: scrape(url)[key] > second, timeout=5, what="the scrapes counted too")


@pytest.mark.parametrize("http", ["0.0.0.0:9200", "192.168.1.5:9200", "[::]:9200", "example.com:9200"])
def test_a_non_loopback_http_needs_http_public(http):
    with pytest.raises(ConfigError, match="http_public"):
        parse_run_file(f'[node]\nhttp = "{http}"\n')
    assert parse_run_file(f'[node]\nhttp = "{http}"\nhttp_public = true\n')[1].http == http


@pytest.mark.parametrize("http", ["127.0.0.1:9200", "127.3.4.5:1", "localhost:9200", "[::1]:9200", ""])
def test_loopback_or_off_is_fine(http):
    assert NodeConfig(http=http).http == http


@pytest.mark.parametrize("http", ["9200", "127.0.0.1:", "127.0.0.1:99999", ":9200"])
def test_a_malformed_http_is_a_config_error(http):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_run_file(f'[node]\nhttp = "{http}"\n')


def test_a_taken_port_is_a_warning(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            assert status_server.start(f"127.0.0.1:{port}", StatusBoard(fake_node(tmp_path))) is None
    assert "status page not served" in caplog.text
    assert status_server.start("", StatusBoard(fake_node(tmp_path))) is None


def test_node_status_prints_the_essentials(served, capsys):
    from node.cli import main

    _, _, clock, reports, url = served
    assert main(["node", "status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "status-test" in out and HOTKEY in out and "ok" in out and "4 (train" in out
    assert all(f"{r.train_loss:.4f}" in out for r in reports)  # one table row per round
    assert "1/2 pass" in out and "1/1 pass" in out
    clock.now += 10 * L
    assert main(["node", "status", "--url", url]) == 1  # stalled
    assert "stalled" in capsys.readouterr().out


def test_node_status_without_a_node_is_a_clear_error(tmp_path, capsys):
    from node.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["node", "status", "--url", f"http://127.0.0.1:{port}"]) == 2
    assert "no node answers" in capsys.readouterr().err
    run = tmp_path / "run.toml"
    run.write_text(f'[node]\nhttp = "127.0.0.1:{port}"\n')
    assert main(["node", "status", "--config", str(run)]) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
