"""node/progress.py: a bar on a terminal, a few log lines in a log file, nothing when disabled."""

import asyncio
import io
import logging
import time
from types import SimpleNamespace

import torch

from node.checkpoint.state import load_checkpoint, save_checkpoint
from node.outer.optimizer import OuterState
from node.progress import Meter, Transfer, amount, on_terminal, read_file
from node.round.sync import fetch_signed_state
from protocol.messages import RoundManifest

LOGGER = "test.progress"


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_amounts_read_as_people_write_them():
    assert amount(12_300_000) == "12.3 MB" and amount(999) == "999 B" and amount(4e12) == "4.0 TB"
    assert amount(40, "step") == "40 steps" and amount(1, "step") == "1 step"


def test_a_pipe_is_no_terminal():
    assert not on_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not on_terminal(closed) and not on_terminal(object())


def test_in_a_log_a_transfer_is_one_line_at_start_and_one_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    meter = Transfer("downloading the state from ab12", logging.getLogger(LOGGER), tty=False)
    meter(3_000_000, 0)
    for _ in range(30):
        meter(3_000_000, 100_000)
    assert meter.meter.closed  # every announced byte arrived
    meter.done(3_000_000)  # and the caller's done() after that adds nothing
    start, end = lines(caplog)
    assert start == "downloading the state from ab12: started, 3.0 MB"
    assert end.startswith("downloading the state from ab12: 3.0 MB in ") and end.endswith("B/s)")


def test_long_work_logs_a_line_every_so_often(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Meter("work", 4, unit="step", log=logging.getLogger(LOGGER), tty=False, every=0.0) as meter:
        meter.update(1)
        meter.update(1)
    said = lines(caplog)
    assert said[0] == "work: started, 4 steps" and len(said) == 4
    assert said[1].startswith("work: 25% 1 step so far, ") and said[2].startswith("work: 50% 2 steps so far, ")
    assert said[3].startswith("work: 2 steps in ") and said[3].endswith("steps/s)")


def test_a_failed_transfer_logs_no_totals_and_a_retry_gets_a_new_meter(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    meter = Transfer("fetch", logging.getLogger(LOGGER), tty=False)
    meter(1000, 0)
    meter(1000, 400)
    first = meter.meter
    meter(1000, 0)  # the same callback, another peer
    assert first.closed and meter.meter is not first and meter.meter.n == 0
    meter.close()
    assert lines(caplog) == ["fetch: started, 1.0 kB", "fetch: started, 1.0 kB"]


def test_the_caller_can_count_bytes_the_callback_never_saw(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    meter = Transfer("fetch", logging.getLogger(LOGGER), tty=False)
    meter.start()
    meter.done(5000)
    assert lines(caplog)[0] == "fetch: started" and lines(caplog)[1].startswith("fetch: 5.0 kB in ")


def test_disabled_means_silent(caplog, capsys):
    caplog.set_level(logging.INFO)
    meter = Transfer("fetch", logging.getLogger(LOGGER), enabled=False, tty=True)
    meter(10, 0)
    meter(10, 10)
    meter.done(10)
    assert not lines(caplog) and capsys.readouterr().err == ""


def test_on_a_terminal_it_is_a_bar_and_no_log(caplog, capsys):
    caplog.set_level(logging.INFO, logger=LOGGER)
    meter = Transfer("fetch state", logging.getLogger(LOGGER), tty=True)
    meter(2000, 0)
    meter(2000, 2000)
    assert meter.meter.bar is not None and meter.meter.closed and not lines(caplog)
    assert "fetch state" in capsys.readouterr().err


def test_quick_reads_stay_silent_and_slow_ones_say_how_long(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 100)
    assert read_file(path, "reading blob", logging.getLogger(LOGGER), tty=False) == path.read_bytes()
    assert not lines(caplog)  # under the 1 s delay
    assert read_file(path, "reading blob", logging.getLogger(LOGGER), delay=0.0, tty=False) == path.read_bytes()
    assert lines(caplog)[0] == "reading blob: started, 25.6 kB" and lines(caplog)[1].startswith("reading blob: 25.6 kB in ")


def test_a_checkpoint_still_loads_through_the_meter(tmp_path):
    state = OuterState.fresh(torch.arange(8, dtype=torch.float32))
    save_checkpoint(tmp_path / "state.safetensors", state, 7)
    loaded, round_ = load_checkpoint(tmp_path / "state.safetensors", 8)
    assert round_ == 7 and loaded.state_hash() == state.state_hash()


def test_a_state_sync_logs_its_download(caplog):
    from node.checkpoint.state import serialize_state

    caplog.set_level(logging.INFO, logger="node.round.sync")
    good = OuterState.fresh(torch.arange(16, dtype=torch.float32))
    data = serialize_state(good, 5)

    async def fetch(peer, kind, digest, max_bytes, timeout, progress):  # as transfer.ask reports a reply
        progress(len(data), 0)
        progress(len(data), len(data))
        return data

    async def peer_of(hotkey):
        return b"holder"

    swarm = SimpleNamespace(peer_id=b"me", fetch=fetch, bindings=SimpleNamespace(peer_of=peer_of))

    async def announcements(round_):
        return []

    manifest = RoundManifest(
        run_id=b"r" * 32, round=4, hotkey="signer", base_state_hash=b"b" * 32, entries=(), result_state_hash=good.state_hash()
    )
    board = SimpleNamespace(swarm=swarm, announcements=announcements)
    assert asyncio.run(fetch_signed_state(board, manifest, 16, deadline=time.time() + 5)) is not None
    said = [r.getMessage() for r in caplog.records if r.name == "node.round.sync"]
    what = f"downloading the state of round 5 from {b'holder'.hex()}"
    assert said[0] == f"{what}: started" and said[1].startswith(f"{what}: {amount(len(data))} in ")
    assert len([s for s in said if s.startswith(what)]) == 2  # the size announcement did not start a second meter
