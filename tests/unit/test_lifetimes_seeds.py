"""protocol/lifetimes.py and the seed labels of protocol/assignment.py: rules every node computes alike."""

from protocol.assignment import derive, pick, train_seed
from protocol.lifetimes import BINDING_ROUNDS, MAX_RECORD_TTL, ROUNDS_KEPT, binding_expiry, record_expiry
from protocol.messages import ContributionMeta, RoundManifest, StateAnnouncement, VerificationRecord
from protocol.schedule import RoundSchedule

RUN = b"r" * 32


def test_each_record_lives_its_rounds_past_the_end_of_its_own_round():
    schedule = RoundSchedule(genesis=1000.0, round_seconds=30.0)
    contribution = ContributionMeta(
        run_id=RUN, round=4, hotkey="h", peer_id=b"p", digest=b"d" * 32, nbytes=1, codec="topk", trained_from=b"b" * 32
    )
    manifest = RoundManifest(run_id=RUN, round=4, hotkey="h", base_state_hash=b"b" * 32, entries=(), result_state_hash=b"x" * 32)
    end = schedule.deadlines(4).end
    assert record_expiry(schedule, contribution) == end + 30.0
    assert record_expiry(schedule, manifest) == end + 4 * 30.0
    assert ROUNDS_KEPT[VerificationRecord] == 8 and ROUNDS_KEPT[StateAnnouncement] == 1
    assert binding_expiry(schedule, 5000.0) == 5000.0 + BINDING_ROUNDS * 30.0
    assert max(ROUNDS_KEPT.values()) * 30.0 < MAX_RECORD_TTL  # the demo's rounds fit the DHT's ceiling


def test_seeds_are_the_protocols_derivations_and_do_not_drift():
    # Pinned: a change here changes every node's batches and every verifier's yardstick.
    assert train_seed(RUN, 3, "hk") == 11780025683098180890
    assert train_seed(RUN, 3, "hk") == int.from_bytes(derive(RUN, "train-seed", 3, "hk")[:8], "little")
    draws = [pick(RUN, "trained-window", 3, "v", b"b" * 32, "s", i, 40) for i in range(4)]
    assert draws == [pick(RUN, "trained-window", 3, "v", b"b" * 32, "s", i, 40) for i in range(4)]
    assert draws != [pick(RUN, "trained-window", 3, "v", b"c" * 32, "s", i, 40) for i in range(4)]  # the beacon decides
    assert all(0 <= d < 40 for d in draws)
