"""The one cache of chain reads: a view answers from its last answer within the read's
refresh window, asks the chain after it, and its own writes end the window at once."""

from __future__ import annotations

import pickle
import types

import pytest

from node.chain import ChainError, ChainUnavailable, DevChain, RefreshWindows
from node.chain import outage as outage_module  # the guard's clock
from node.chain.bittensor_adapter import BittensorChain
from node.chain.guard import ChainGuard
from tests.support import keypair
from tests.support.chains import POLICY
from tests.support.fake_subtensor import FakeSubstrate

A, B = keypair("Alice"), keypair("Bob")


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The guard's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(outage_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


class Counting:
    """A chain read that counts how often the chain was asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def __call__(self) -> int:
        if self.down:
            raise ChainUnavailable("connection refused")
        self.calls += 1
        return self.calls


def test_a_read_within_its_window_does_not_touch_the_chain(clock):
    guard, read = ChainGuard("test", POLICY, fresh_for={"neurons": 12.0}), Counting()
    assert guard.read("neurons", read) == 1
    clock[0] += 11.9
    assert guard.read("neurons", read) == 1 and read.calls == 1
    clock[0] += 0.2
    assert guard.read("neurons", read) == 2 and read.calls == 2  # the window is over: the chain is asked


def test_reads_have_windows_of_their_own(clock):
    guard = ChainGuard("test", POLICY, fresh_for={"neurons": 12.0, "commitments": 5.0})
    neurons, commitments, height = Counting(), Counting(), Counting()
    for read, what in ((neurons, "neurons"), (commitments, "commitments"), (height, "block height")):
        guard.read(what, read)
    clock[0] += 6
    for read, what in ((neurons, "neurons"), (commitments, "commitments"), (height, "block height")):
        guard.read(what, read)
    assert (neurons.calls, commitments.calls, height.calls) == (1, 2, 2)  # a read without a window always asks


def test_a_write_ends_every_window(clock):
    guard, read = ChainGuard("test", POLICY, fresh_for={"neurons": 12.0}), Counting()
    guard.read("neurons", read)
    guard.write("set weights", lambda: None)
    assert guard.read("neurons", read) == 2
    assert guard.read("neurons", read) == 2  # and a new window begins
    guard.invalidate()  # a write that did not go through write(): a dev chain's registration
    assert guard.read("neurons", read) == 3


def test_a_refused_write_leaves_the_window(clock):
    guard, read = ChainGuard("test", POLICY, fresh_for={"neurons": 12.0}), Counting()
    guard.read("neurons", read)

    def refused() -> None:
        raise ChainError("no validator permit")

    with pytest.raises(ChainError):
        guard.write("set weights", refused)
    assert guard.read("neurons", read) == 1 and read.calls == 1  # nothing changed on chain


def test_an_outage_after_the_window_serves_the_last_answer(clock):
    guard, read = ChainGuard("test", POLICY, fresh_for={"neurons": 12.0}), Counting()
    assert guard.read("neurons", read) == 1
    read.down = True
    clock[0] += 13
    assert guard.read("neurons", read) == 1
    assert not guard.health().reachable
    read.down = False
    clock[0] += 1  # past the backoff
    assert guard.read("neurons", read) == 2 and guard.health().reachable


def test_refresh_windows_are_checked():
    assert RefreshWindows.uniform(0) == RefreshWindows(neurons=0, weights=0, commitments=0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            RefreshWindows(commitments=bad)


# On the views -------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "chain.db"
    DevChain.create(path, max_validators=2)
    return path


def test_another_processes_write_is_seen_once_the_window_ends(path, clock):
    reader, writer = DevChain(path, policy=POLICY), DevChain(path, policy=POLICY)
    writer.register(A.ss58_address)
    assert reader.commitments() == {} and [n.hotkey for n in reader.neurons()] == [A.ss58_address]
    writer.set_commitment(A, b"peer")
    writer.register(B.ss58_address)
    assert reader.commitments() == {}  # within the window: the last answer
    clock[0] += RefreshWindows().commitments
    assert reader.commitments() == {A.ss58_address: b"peer"}
    assert len(reader.neurons()) == 1  # the metagraph's window is longer
    clock[0] += RefreshWindows().neurons
    assert len(reader.neurons()) == 2


def test_a_views_own_writes_are_seen_at_once(path, clock):
    chain = DevChain(path, policy=POLICY)
    assert chain.neurons() == [] and chain.commitments() == {} and chain.weights() == {}
    chain.register(A.ss58_address)
    assert [n.hotkey for n in chain.neurons()] == [A.ss58_address]
    chain.add_stake(A.ss58_address, 5.0)
    assert chain.neuron(A.ss58_address).validator_permit
    chain.set_commitment(A, b"peer")
    assert chain.commitments() == {A.ss58_address: b"peer"}
    chain.set_weights(A, [0], [1.0])
    assert chain.weights() == {0: {0: 1.0}}


def test_a_window_of_zero_reads_the_file_every_time(path, clock):
    reader, writer = DevChain(path, refresh=RefreshWindows.uniform(0)), DevChain(path)
    assert reader.neurons() == []
    writer.register(A.ss58_address)
    assert [n.hotkey for n in reader.neurons()] == [A.ss58_address]


def test_a_pickled_dev_chain_has_a_cache_of_its_own(path, clock):
    # The DHT record validator's copy of the view reads the chain for itself.
    chain, writer = DevChain(path), DevChain(path)
    assert chain.neurons() == []
    writer.register(A.ss58_address)
    copy = pickle.loads(pickle.dumps(chain))
    assert chain.neurons() == [] and [n.hotkey for n in copy.neurons()] == [A.ss58_address]


def test_the_bittensor_metagraph_is_read_once_per_window(btcli_cache, clock):
    fake = FakeSubstrate(3, max_validators=2)
    fake.register(A.ss58_address)
    fake.stake(A.ss58_address, 10)
    fake.epoch()
    chain = BittensorChain("local", 3, substrate=fake, policy=POLICY)
    seen = chain.neurons()
    calls = fake.calls
    fake.stake(A.ss58_address, 5)
    assert chain.neurons() == seen and chain.neuron(A.ss58_address) == seen[0] and fake.calls == calls
    chain.block()
    assert fake.calls > calls  # the block height has no window
    chain.set_commitment(A, b"peer")  # our own write: the metagraph is read again
    assert chain.neurons()[0].stake == pytest.approx(15.0)
    assert chain.commitments() == {A.ss58_address: b"peer"}
