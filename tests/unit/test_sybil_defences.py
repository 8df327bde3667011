"""Sybil resistance without a network: DHT store caps, the push inbox, chain-bound peer ids, gather
selection from on-chain standing. Pushes and streams between real peers: tests/integration/test_sybil_defences.py."""

import asyncio
import dataclasses

import pytest

from node.chain import Neuron
from node.outer.selection import select_contributions
from node.swarm import push, records
from node.swarm.binding import ChainBindings, parse_commitment, signed_binding
from node.verifier.scores import Scoreboard
from protocol import signing, wire
from protocol.messages import ContributionMeta, VerificationRecord
from tests.support.records import verification_record
from tests.support.swarm import RUN, contribution, record_for

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's


def test_store_cap_per_hotkey_kind_and_round(chain, keys):
    alice = keys["Alice"]
    chain.register(alice.ss58_address)
    v = records.RunRecordValidator(RUN, chain, store_cap={**records.STORE_CAP, "contrib": 2})
    first, second, third = (record_for(contribution(alice, digest=bytes([i]) * 32)) for i in (1, 2, 3))
    assert v.validate(first) and v.validate(second)
    assert not v.validate(third)  # a third distinct contribution in round 1: over the cap
    assert v.validate(first) and v.validate(second)  # the same records seen again (re-store, find) still pass
    assert v.validate(record_for(contribution(alice, round_=2, digest=b"\x03" * 32)))  # another round has its own count
    assert v.rejected == {"store_cap": 1}


def test_unregistered_and_oversized_records_are_counted_refusals(chain, keys):
    alice, eve = keys["Alice"], keys["Eve"]
    chain.register(alice.ss58_address)
    v = records.RunRecordValidator(RUN, chain)
    assert not v.validate(record_for(contribution(eve)))
    huge = record_for(contribution(alice), value=b"\x00" * (records.MAX_RECORD_VALUE_BYTES + 1))
    assert not v.validate(huge)
    assert v.rejected == {"unregistered": 1, "oversized": 1}


def test_store_cap_memory_is_bounded(chain, keys, monkeypatch):
    alice = keys["Alice"]
    chain.register(alice.ss58_address)
    monkeypatch.setattr(records, "MAX_TRACKED_SLOTS", 3)
    v = records.RunRecordValidator(RUN, chain)
    for r in range(10):
        assert v.validate(record_for(contribution(alice, round_=r)))
    assert len(v._stored) == 3


def test_verdicts_have_a_cap_of_their_own(chain, keys):
    alice = keys["Alice"]
    chain.register(alice.ss58_address)
    v = records.RunRecordValidator(RUN, chain, store_cap={**records.STORE_CAP, "verdict": 1})

    def verdict(subject):
        return signing.sign(verification_record(RUN, alice.ss58_address, subject, 1, "pass", [("gain", 1.0)]), alice)

    assert v.validate(record_for(verdict(keys["Bob"].ss58_address)))
    assert not v.validate(record_for(verdict(keys["Eve"].ss58_address)))


def test_inbox_keeps_what_the_dht_validator_would_and_no_more(chain, keys):
    alice, bob, eve = keys["Alice"], keys["Bob"], keys["Eve"]
    chain.register(alice.ss58_address)
    chain.register(bob.ss58_address)
    inbox = push.Inbox(records.RunRecordValidator(RUN, chain, store_cap={**records.STORE_CAP, "contrib": 1}))
    a1, b1 = contribution(alice, round_=1), contribution(bob, round_=1)
    assert inbox.accept(wire.encode(a1)) and inbox.accept(wire.encode(b1))
    assert not inbox.accept(wire.encode(contribution(eve)))  # unregistered
    assert not inbox.accept(wire.encode(contribution(alice, round_=1, digest=b"\x09" * 32)))  # over Alice's cap for round 1
    assert not inbox.accept(wire.encode(dataclasses.replace(a1, nbytes=6)))  # signature no longer matches
    assert not inbox.accept(b"\xc1 not a message")
    other_run = signing.sign(dataclasses.replace(contribution(alice, round_=2), run_id=b"\x08" * 32, signature=b""), alice)
    assert not inbox.accept(wire.encode(other_run))
    assert not inbox.accept(b"\x00" * (wire.MAX_ENVELOPE_BYTES + 1))
    assert inbox.validator.rejected == {
        "unregistered": 1,
        "store_cap": 1,
        "bad_signature": 1,
        "malformed": 1,
        "wrong_run": 1,
        "oversized": 1,
    }

    key = records.round_key(RUN, "contrib", 1)
    found = {alice.ss58_address: a1}  # the DHT returned Alice's only
    inbox.fill(key, ContributionMeta, found)
    assert found == {alice.ss58_address: a1, bob.ss58_address: b1} and inbox.filled == 1
    inbox.fill(key, ContributionMeta, {})
    assert inbox.filled == 2  # Alice's now came from the inbox too; Bob's is not counted twice
    inbox.fill(key, VerificationRecord, found := {})
    assert found == {}  # a read for another kind gets nothing

    assert inbox.accept(wire.encode(contribution(alice, round_=5)))
    inbox.forget_before(5)
    assert inbox.nbytes == len(wire.encode(contribution(alice, round_=5)))
    inbox.fill(key, ContributionMeta, found := {})
    assert found == {}


def test_inbox_is_bounded_in_bytes_per_signer_and_in_total(chain, keys):
    registered = [keys["Alice"], keys["Bob"]]
    for kp in registered:
        chain.register(kp.ss58_address)
    one = len(wire.encode(contribution(keys["Alice"], round_=0)))
    inbox = push.Inbox(records.RunRecordValidator(RUN, chain), max_bytes=push.SIGNER_SHARE * 2 * one)
    alice, bob = registered
    assert inbox.accept(wire.encode(contribution(alice, round_=0))) and inbox.accept(wire.encode(contribution(alice, round_=1)))
    assert not inbox.accept(wire.encode(contribution(alice, round_=2)))  # Alice used her share
    assert inbox.accept(wire.encode(contribution(bob, round_=2)))  # Bob still has his
    inbox.forget_before(1)
    assert inbox.accept(wire.encode(contribution(alice, round_=2)))
    small = push.Inbox(records.RunRecordValidator(RUN, chain), max_bytes=one)  # a share smaller than one record
    assert not small.accept(wire.encode(contribution(alice, round_=0)))


def test_inbox_takes_only_rounds_near_the_current_one(chain, keys):
    alice = keys["Alice"]
    chain.register(alice.ss58_address)
    inbox = push.Inbox(records.RunRecordValidator(RUN, chain), round_now=lambda: 20)
    assert inbox.accept(wire.encode(contribution(alice, round_=20 - push.ROUNDS_BEHIND)))
    assert inbox.accept(wire.encode(contribution(alice, round_=20 + push.ROUNDS_AHEAD)))
    assert not inbox.accept(wire.encode(contribution(alice, round_=20 + push.ROUNDS_AHEAD + 1)))  # minted far ahead
    assert not inbox.accept(wire.encode(contribution(alice, round_=20 - push.ROUNDS_BEHIND - 1)))
    assert inbox.validator.rejected == {"out_of_window": 2}


def test_commitments_bind_only_registered_signers(chain, keys):
    alice, bob = keys["Alice"], keys["Bob"]
    chain.register(alice.ss58_address)
    chain.register(bob.ss58_address)
    data = signed_binding(RUN, alice, b"peer-a", now=1000.0)
    assert len(data) <= 384
    assert parse_commitment(RUN, alice.ss58_address, data, now=1001.0).peer_id == b"peer-a"
    assert parse_commitment(RUN, bob.ss58_address, data, now=1001.0) is None  # Bob committing Alice's binding
    assert parse_commitment(RUN, alice.ss58_address, data, now=1e12) is None  # expired
    assert parse_commitment(b"\x08" * 32, alice.ss58_address, data, now=1001.0) is None  # another run
    assert parse_commitment(RUN, alice.ss58_address, b"\xc1junk", now=1001.0) is None
    chain.set_commitment(bob, b"not a binding")

    async def read():
        bindings = ChainBindings(RUN, chain)
        chain.set_commitment(alice, signed_binding(RUN, alice, b"peer-a"))
        return await bindings.hotkey_of(b"peer-a"), await bindings.peer_of(bob.ss58_address)

    assert asyncio.run(read()) == (alice.ss58_address, None)


def neuron(uid, hotkey, stake, weight=0.0, incentive=0.0):
    return Neuron(uid=uid, hotkey=hotkey, stake=stake, validator_permit=False, incentive=incentive, weight=weight)


def verdict_record(subject, round_, verdict):
    return verification_record(RUN, "v", subject, round_, verdict)


def test_gather_ranks_by_chain_standing_and_local_verdicts():
    board = Scoreboard(ban_rounds=4)
    board.add(verdict_record("checked", 1, "pass"))
    board.add(verdict_record("cheat", 2, "fail"))
    candidates = {
        "weighted": neuron(0, "weighted", 1.0, weight=0.5),  # the permit holders value it; this node never checked it
        "rewarded": neuron(1, "rewarded", 1.0, incentive=0.2),
        "checked": neuron(2, "checked", 2.0),
        "cheat": neuron(3, "cheat", 500.0, weight=0.3),  # on-chain weight does not outweigh a failed check here
        "new1": neuron(4, "new1", 9.0),
        "new2": neuron(5, "new2", 8.0),
        "new3": neuron(6, "new3", 7.0),
    }
    chosen = select_contributions(board, candidates, round_=3, gather_size=10, probation_slots=2)
    assert set(chosen) == {"weighted", "rewarded", "checked", "new1", "new2"}
    assert list(chosen) == sorted(chosen, key=lambda h: (-candidates[h].stake, h))  # the manifest's order
    # weights follow the same rank: the best chain standing 1.0, 0.2 incentive against 0.5 weight 0.7, newcomers 0.5
    assert (chosen["weighted"], chosen["rewarded"], chosen["new1"], chosen["new2"]) == (1.0, 0.7, 0.5, 0.5)
    # a small gather set takes the best established hotkeys: chain standing counts, so does the local pass rate
    assert set(select_contributions(board, candidates, 3, gather_size=2, probation_slots=2)) == {"weighted", "checked"}
    # newcomers never take more than the probation slots, however many register
    crowd = {f"sybil{i}": neuron(10 + i, f"sybil{i}", 1e6) for i in range(50)}
    chosen = select_contributions(board, {**candidates, **crowd}, 3, gather_size=6, probation_slots=1)
    assert len([h for h in chosen if h.startswith("sybil")]) == 1 and {"weighted", "rewarded", "checked"} <= set(chosen)
    # once the ban ends, the cheat's on-chain standing and (failed) record both count again
    assert "cheat" in select_contributions(board, candidates, round_=7, gather_size=10, probation_slots=2)


def test_gather_without_chain_weights_falls_back_to_local_verdicts():
    board = Scoreboard()
    board.add(verdict_record("good", 1, "pass"))
    board.add(verdict_record("mixed", 1, "pass"))
    board.add(dataclasses.replace(verdict_record("mixed", 2, "fail"), hotkey="w"))
    candidates = {h: neuron(i, h, s) for i, (h, s) in enumerate([("good", 1.0), ("mixed", 5.0), ("new", 3.0)])}
    assert set(select_contributions(board, candidates, round_=20, gather_size=1, probation_slots=1)) == {"good"}
