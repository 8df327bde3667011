"""The DHT validator of the swarm's records: only well-formed, signed records of registered hotkeys."""

import dataclasses

import pytest
from hivemind.dht.validation import DHTRecord
from hivemind.utils import get_dht_time

from node.swarm import records
from tests.support.swarm import RUN, contribution, manifest, record_for

pytestmark = pytest.mark.chain(max_validators=1)  # the `chain` fixture's


def test_validator_accepts_only_well_formed_signed_registered_records(chain, registered):
    alice, bob, eve = registered["Alice"], registered["Bob"], registered["Eve"]
    v = records.RunRecordValidator(RUN, chain)

    good = contribution(alice)
    assert v.validate(record_for(good))
    # unregistered hotkey
    assert not v.validate(record_for(contribution(eve)))
    # unsigned
    assert not v.validate(record_for(dataclasses.replace(good, signature=b"")))
    # wrong run (validly signed for another run)
    assert not v.validate(record_for(contribution(alice, run=b"\x08" * 32)))
    # stored under another round's key than it names
    assert not v.validate(record_for(good, key=records.round_key(RUN, "contrib", 2)))
    # subkey that is not the signer
    assert not v.validate(record_for(good, subkey=bob.ss58_address))
    # pinned far into the future
    assert not v.validate(record_for(good, ttl=10 * records.MAX_RECORD_TTL))
    # not a wire message at all
    assert not v.validate(record_for(good, value=b"\x00garbage"))
    assert not v.validate(DHTRecord(b"k", b"s", b"\xc1", get_dht_time() + 5))

    # manifests only from validator permits (max_validators=1: Alice only)
    assert v.validate(record_for(manifest(alice)))
    assert not v.validate(record_for(manifest(bob)))
    # every refusal is counted under its reason, for the round report
    assert v.rejected == {"unregistered": 1, "unsigned": 1, "wrong_run": 1, "misplaced": 2, "ttl": 1, "malformed": 2, "no_permit": 1}


def test_validator_counts_forgeries_caps_and_oversized_records_by_reason(chain, registered):
    alice = registered["Alice"]
    v = records.RunRecordValidator(RUN, chain, store_cap={**records.STORE_CAP, "contrib": 1})
    good = contribution(alice)
    assert v.validate(record_for(good))
    assert not v.validate(record_for(dataclasses.replace(good, signature=bytes(64))))  # forged
    assert not v.validate(record_for(contribution(alice, digest=b"\x09" * 32)))  # a second one in round 1
    assert not v.validate(record_for(good, value=b"\x00" * (records.MAX_RECORD_VALUE_BYTES + 1)))
    assert not v.validate(DHTRecord(b"k", b"s", b"\xc1", get_dht_time() + 5))  # msgpack's own error: malformed
    assert v.rejected == {"bad_signature": 1, "store_cap": 1, "oversized": 1, "malformed": 1}


def test_validator_with_a_round_clock_refuses_records_of_rounds_far_from_now(chain, registered):
    """Found by the hostile peer (devnet/hostile.py, dht-*-future): each round number it named was a fresh
    store-cap slot, so one registered hotkey could fill the DHT with records of rounds nobody will reach."""
    alice = registered["Alice"]
    v = records.RunRecordValidator(RUN, chain, round_now=lambda: 20)
    for r in (20 - records.ROUNDS_BEHIND, 20, 20 + records.ROUNDS_AHEAD):
        assert v.validate(record_for(contribution(alice, round_=r)))
    for r in (20 - records.ROUNDS_BEHIND - 1, 20 + records.ROUNDS_AHEAD + 1, 10**9):
        assert not v.validate(record_for(contribution(alice, round_=r)))
    assert v.rejected == {"out_of_window": 3}
    assert records.RunRecordValidator(RUN, chain).validate(record_for(contribution(alice, round_=10**9)))  # no clock: no window
