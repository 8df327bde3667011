"""devnet/demo.py and devnet/cli.py: the demo's seeded identities and its validators."""

import argparse
import hashlib
from types import SimpleNamespace

from devnet.cli import add_demo
from devnet.demo import key_seed, prepare
from node.chain import DevChain
from node.config import NodeConfig
from node.keys import Keypair, load_hotkey


def test_without_a_seed_the_identities_are_the_usual_ones():
    for i in range(4):
        assert key_seed(i) == hashlib.sha256(f"gradswarm-demo/node{i}".encode()).digest()


def test_a_seed_gives_other_identities_the_same_every_time():
    assert key_seed(2, 7) == hashlib.sha256(b"gradswarm-demo/7/node2").digest() == key_seed(2, 7)
    seeded = {key_seed(i, 7) for i in range(4)}
    assert len(seeded) == 4 and not seeded & {key_seed(i) for i in range(4)}
    assert key_seed(0, 7) != key_seed(0, 8) and key_seed(0, 0) != key_seed(0)


def test_prepare_seeds_the_keys_and_makes_every_honest_node_a_validator(tmp_path, monkeypatch):
    import node.data.sources

    monkeypatch.setattr(node.data.sources, "open_corpus", lambda data, cache: SimpleNamespace(digest="d" * 64))
    spec, configs, cheaters, kinds = prepare(tmp_path, 3, 20.0, ["noise", "late"], seed=5)
    hotkeys = [load_hotkey(c.wallet, "default", tmp_path / "wallets").ss58_address for c in configs]
    assert hotkeys == [Keypair.create_from_seed(key_seed(i, 5)).ss58_address for i in range(5)]
    assert cheaters == hotkeys[3:] and kinds == ["", "", "", "noise", "late"]
    permits = {n.hotkey: n.validator_permit for n in DevChain(spec.chain.path).neurons()}
    assert [permits[h] for h in hotkeys] == [True, True, True, False, False]
    assert all(c.verify_samples == NodeConfig().verify_samples for c in configs)


def test_demo_passes_its_seed_on(monkeypatch):
    import devnet.demo

    seen = {}
    monkeypatch.setattr(devnet.demo, "run_demo", lambda **kw: seen.update(kw) or 0)
    parser = argparse.ArgumentParser()
    add_demo(parser.add_subparsers())
    for argv, seed in ((["demo"], None), (["demo", "--seed", "42"], 42)):
        args = parser.parse_args(argv)
        assert args.func(args) == 0 and seen["seed"] == seed


def test_the_demo_help_names_every_adversary_kind():
    from devnet.adversaries import KINDS

    sub = argparse.ArgumentParser().add_subparsers()
    add_demo(sub)
    option = next(a for a in sub.choices["demo"]._actions if a.dest == "adversaries")
    assert option.help.rsplit(": ", 1)[1].split(",") == list(KINDS)


def test_prepare_gives_every_node_its_own_loopback_status_port_and_names_its_phases(tmp_path, monkeypatch):
    import ipaddress

    import node.data.sources
    from devnet.startup import PHASES

    monkeypatch.setattr(node.data.sources, "open_corpus", lambda data, cache: SimpleNamespace(digest="d" * 64))
    heard = []
    _spec, configs, _cheaters, _kinds = prepare(tmp_path, 3, 20.0, ["noise"], phase=heard.append)
    addresses = [c.http.rsplit(":", 1) for c in configs]
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in addresses) and len({port for _, port in addresses}) == 4
    assert heard == [PHASES[1], PHASES[2]]


def status_body(round_: int, reports: list[dict]) -> dict:
    """A /status body as the contract spells it (the fields the table reads)."""
    return {
        "round": round_,
        "phase": "collect",
        "peers": {"connected": 2, "bound": 2},
        "health": {"status": "ok", "round": round_ - 1, "in_sync": True},
        "reports": reports,
    }


def test_a_row_from_status_shows_the_open_round_and_the_last_report():
    from devnet.live import row_from_status

    report = {"round": 3, "train_loss": 4.5, "eval_loss": 4.75, "in_sync": False, "upload_payload_bytes": 1000, "upload_state_bytes": 24}
    row = row_from_status("node1", status_body(4, [{"round": 2}, report]))
    assert (row.round, row.phase, row.reported, row.train_loss, row.eval_loss) == (4, "collect", 3, 4.5, 4.75)
    assert (row.in_sync, row.upload_bytes, row.peers, row.health, row.source) == (False, 1024, 2, "ok", "status")
    before = row_from_status("node1", status_body(0, []))
    assert before.reported is None and before.upload_bytes is None and before.in_sync is True


def test_a_row_from_the_log_when_there_is_no_endpoint():
    from devnet.live import row_from_log
    from node.round.report import RoundReport

    row = row_from_log("node2", {1: RoundReport(1, "h", 0.0, train_loss=5.0), 2: RoundReport(2, "h", 0.0, upload_state_bytes=7)})
    assert (row.round, row.reported, row.train_loss, row.upload_bytes, row.in_sync, row.source) == (2, 2, None, 7, True, "log")
    assert row_from_log("node3", {}).source == "—"


def test_poll_asks_status_and_falls_back_to_rounds_jsonl(tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rich.console import Console

    from devnet.live import free_port, page_url, poll, render
    from node.round.report import RoundReport

    body = json.dumps(status_body(5, [{"round": 4, "train_loss": 3.25}])).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/status" else 404)
            self.end_headers()
            self.wfile.write(body if self.path == "/status" else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        RoundReport(1, "h", 0.0, train_loss=6.0).append_to(tmp_path / "rounds.jsonl")
        nodes = {
            "node0": (page_url(f"127.0.0.1:{server.server_address[1]}"), tmp_path / "none.jsonl"),
            "node1": (page_url(f"127.0.0.1:{free_port()}"), tmp_path / "rounds.jsonl"),  # nobody listens there
        }
        up, down = poll(nodes)
    finally:
        server.shutdown()
    assert (up.source, up.round, up.reported, up.train_loss) == ("status", 5, 4, 3.25)
    assert (down.source, down.round, down.train_loss) == ("log", 1, 6.0)
    console = Console(record=True, width=160)
    console.print(render([up, down], "demo"))
    text = console.export_text()
    assert "node0" in text and "collect" in text and "3.2500" in text and "6.0000" in text and "log" in text


def test_off_a_terminal_the_live_table_and_the_start_up_bar_stay_silent(capsys):
    import time

    from devnet.live import LiveTable
    from devnet.startup import PHASES, StartUp

    with LiveTable({"node0": ("http://127.0.0.1:1/", "/nonexistent")}, tty=False) as table:
        assert table.live is None and table._thread is None
    with StartUp(tty=False) as startup:
        startup.phase(PHASES[0])
        began = time.time()
        startup.countdown(time.time() + 30, keep_waiting=lambda: False)  # every node exited: no waiting
        startup.countdown(time.time() + 0.2)
        assert 0.15 < time.time() - began < 5 and startup.current == PHASES[-1]
    assert capsys.readouterr().out == ""


def test_on_a_terminal_the_table_is_drawn_from_the_logs(tmp_path, capsys):
    import time

    from devnet.live import LiveTable
    from node.round.report import RoundReport

    RoundReport(0, "h", 0.0, train_loss=7.5).append_to(tmp_path / "rounds.jsonl")
    with LiveTable({"node0": ("http://127.0.0.1:1/", tmp_path / "rounds.jsonl")}, title="demo", tty=True, refresh=0.05):
        time.sleep(0.5)
    assert "7.5000" in capsys.readouterr().out
