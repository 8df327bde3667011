"""The ChainView contract: every test runs against the embedded dev chain and
against the Bittensor adapter on the in-memory substrate of tests/support/fake_subtensor.py
(the `harness` fixture; the harnesses are in tests/support/chains.py).
"""

from __future__ import annotations

import logging
import types

import pytest

from node.chain import ChainError, ChainUnavailable, ChainView
from node.chain import outage as outage_module  # the guard's clock
from protocol import signing, wire
from protocol.messages import PeerBinding
from tests.support import wait_for
from tests.support.chains import NETUID, A, B, C, D, validators

# Membership -------------------------------------------------------------------


def test_is_a_chainview(harness):
    assert isinstance(harness.chain, ChainView)


def test_registration_is_visible_in_the_metagraph(harness):
    chain = harness.chain
    assert chain.neurons() == []
    harness.register(A.ss58_address)
    harness.register(B.ss58_address)
    neurons = chain.neurons()
    assert [(n.uid, n.hotkey) for n in neurons] == [(0, A.ss58_address), (1, B.ss58_address)]
    assert all(n.stake == 0 and not n.validator_permit and n.incentive == 0 for n in neurons)
    assert chain.neuron(B.ss58_address) == neurons[1]
    assert chain.neuron(D.ss58_address) is None


def test_stakes_and_permits_follow_the_top_stakes(harness):
    chain = validators(harness, {A: 5.0, B: 50.0, C: 20.0, D: 0})
    neurons = chain.neurons()
    assert [n.stake for n in neurons] == [pytest.approx(s) for s in (5.0, 50.0, 20.0, 0.0)]
    assert [n.validator_permit for n in neurons] == [False, True, True, False]  # top 2 by stake


# Weights ------------------------------------------------------------------------


def test_weights_round_trip(harness):
    chain = validators(harness, {A: 50.0, B: 30.0, C: 0})
    assert chain.weights() == {}
    chain.set_weights(A, [1, 2], [1.0, 3.0])
    assert chain.weights() == {0: {1: pytest.approx(0.25, abs=1e-4), 2: pytest.approx(0.75, abs=1e-4)}}
    chain.set_weights(A, [2], [0.5])  # a new row replaces the old one
    assert chain.weights() == {0: {2: 1.0}}


def test_incentive_and_weight_are_the_permit_holders_stake_weighted_verdict(harness):
    chain = validators(harness, {A: 50.0, B: 30.0, C: 0})
    assert [n.weight for n in chain.neurons()] == [0.0, 0.0, 0.0]  # nobody has set weights yet
    chain.set_weights(A, [1, 2], [1.0, 3.0])
    chain.set_weights(B, [2], [1.0])
    harness.epoch()
    # uid 1: A's quarter, by A's share of the permit holders' stake; uid 2: the rest.
    expected = [0.0, 50 * 0.25 / 80, (50 * 0.75 + 30 * 1.0) / 80]
    neurons = chain.neurons()
    assert [n.weight for n in neurons] == [pytest.approx(e, abs=1e-4) for e in expected]
    assert [n.incentive for n in neurons] == [pytest.approx(e, abs=1e-4) for e in expected]
    assert sum(n.incentive for n in neurons) == pytest.approx(1.0, abs=1e-4)


def test_only_registered_permit_holders_set_weights(harness):
    chain = validators(harness, {A: 50.0, B: 30.0, C: 1.0})  # C: staked, but third
    with pytest.raises(ChainError):
        chain.set_weights(C, [0], [1.0])
    with pytest.raises(ChainError):
        chain.set_weights(D, [0], [1.0])
    assert chain.weights() == {}


@pytest.mark.parametrize(
    ("uids", "weights"),
    [
        ([0, 1], [1.0]),  # length mismatch
        ([0, 0], [1.0, 1.0]),  # duplicate uid
        ([0, 7], [1.0, 1.0]),  # unregistered uid
        ([0, 1], [1.0, -1.0]),  # negative
        ([0, 1], [1.0, float("nan")]),  # not finite
        ([0, 1], [0.0, 0.0]),  # nothing to set
        ([0.5], [1.0]),  # non-integer uid
    ],
)
def test_invalid_weights_are_refused_and_leave_the_row(harness, uids, weights):
    chain = validators(harness, {A: 50.0, B: 30.0})
    chain.set_weights(A, [1], [1.0])
    with pytest.raises(ChainError):
        chain.set_weights(A, uids, weights)
    assert chain.weights() == {0: {1: 1.0}}
    assert chain.health().pending_writes == ()


def test_commit_reveal_subnet_reveals_weights_only_later(harness):
    if not harness.commit_reveal:
        pytest.skip("the dev chain has no commit-reveal")
    chain = validators(harness, {A: 50.0, B: 30.0, C: 0})
    chain.set_weights(A, [1], [1.0])
    harness.fake.commit_reveal = True  # the subnet owner turns it on
    chain.set_weights(A, [1, 2], [1.0, 3.0])
    # Committed timelocked; until the chain reveals it, the old row stands.
    assert [(hotkey, params["netuid"]) for hotkey, params in harness.fake.timelocked] == [(A.ss58_address, NETUID)]
    assert chain.weights() == {0: {1: 1.0}}


# Commitments -------------------------------------------------------------------


def test_commitments_round_trip_a_peer_binding(harness):
    chain = validators(harness, {A: 0, B: 0})
    binding = signing.sign(PeerBinding(run_id=b"r" * 32, hotkey=A.ss58_address, peer_id=b"\x00\x24" + bytes(36), expires_at=1e9), A)
    data = wire.encode(binding)
    chain.set_commitment(A, data)
    chain.set_commitment(B, b"first")
    chain.set_commitment(B, b"second")  # replaces
    got = chain.commitments()
    assert got == {A.ss58_address: data, B.ss58_address: b"second"}
    assert wire.decode(got[A.ss58_address]) == binding


def test_commitments_are_bounded_and_need_registration(harness):
    chain = validators(harness, {A: 0})
    with pytest.raises(ChainError, match="at most"):
        chain.set_commitment(A, b"x" * 385)
    with pytest.raises(ChainError, match="bytes"):
        chain.set_commitment(A, "text")
    with pytest.raises(ChainError):
        chain.set_commitment(D, b"stranger")
    assert chain.commitments() == {}


# Blocks -------------------------------------------------------------------------


def test_block_number_is_monotone(harness):
    chain = harness.chain
    first = chain.block()
    harness.advance(3)
    second = chain.block()
    assert second >= first + 3
    assert chain.block() >= second
    assert chain.block_time > 0


# Outages ------------------------------------------------------------------------


def test_outage_serves_the_last_good_answers(harness, caplog):
    chain = validators(harness, {A: 50.0, B: 30.0})
    chain.set_weights(A, [1], [1.0])
    chain.set_commitment(B, b"peer")
    seen = (chain.neurons(), chain.weights(), chain.commitments(), chain.block())
    harness.outage(True)
    with caplog.at_level(logging.WARNING, logger="node.chain"):
        assert (chain.neurons(), chain.weights(), chain.commitments(), chain.block()) == seen
    assert "cannot read" in caplog.text
    assert chain.neuron(A.ss58_address) == seen[0][0]
    health = chain.health()
    assert not health.reachable and health.failures >= 1 and health.last_error
    harness.outage(False)
    wait_for(lambda: chain.health().retry_in == 0)
    assert chain.neurons() == seen[0]
    assert chain.health().reachable


def test_outage_without_an_earlier_answer_is_chain_unavailable(harness):
    harness.outage(True)
    with pytest.raises(ChainUnavailable):
        harness.chain.neurons()
    with pytest.raises(ChainError):  # ChainUnavailable is a ChainError: callers need catch only one
        harness.chain.commitments()


def test_writes_during_an_outage_are_queued_and_retried(harness):
    chain = validators(harness, {A: 50.0, B: 30.0})
    chain.set_weights(A, [1], [1.0])
    chain.weights()
    harness.outage(True)
    chain.set_weights(A, [0], [1.0])  # superseded by the next one before it is retried
    chain.set_weights(A, [0, 1], [1.0, 1.0])
    chain.set_commitment(A, b"peer")
    assert chain.health().pending_writes == (f"set weights for {A.ss58_address}", f"set the commitment of {A.ss58_address}")
    assert chain.weights() == {0: {1: 1.0}}
    harness.outage(False)
    wait_for(lambda: not chain.health().pending_writes)
    assert chain.weights() == {0: {0: 0.5, 1: 0.5}}
    assert chain.commitments() == {A.ss58_address: b"peer"}


def test_failed_calls_back_off_exponentially(harness, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(outage_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    chain = validators(harness, {A: 50.0})
    seen = chain.neurons()
    harness.outage(True)
    delays = []
    for _ in range(4):
        assert chain.neurons() == seen  # one failed attempt
        health = chain.health()
        delays.append(health.retry_in)
        assert chain.neurons() == seen  # within the backoff: the chain is left alone
        assert chain.health().failures == health.failures
        clock[0] += health.retry_in
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.2])  # doubling up to max_delay
    assert chain.health().failures == 4
    harness.outage(False)
    assert chain.neurons() == seen
    assert chain.health().failures == 0
