"""protocol/election.py: who signs a manifest, when, and which manifest every node applies."""

from dataclasses import dataclass

from node.round.manifest import may_sign
from protocol.election import MAX_VALIDATOR_SLOTS, best_manifest, manifest_signers, signer_rank, signing_time
from protocol.messages import RoundManifest
from protocol.schedule import RoundSchedule


@dataclass(frozen=True)
class N:
    uid: int
    hotkey: str
    stake: float
    validator_permit: bool


def manifest(round_: int, signer: str) -> RoundManifest:
    return RoundManifest(run_id=b"r" * 32, round=round_, hotkey=signer, base_state_hash=b"b" * 32, entries=(), result_state_hash=b"x" * 32)


def test_signers_are_permitted_validators_by_stake_then_uid_at_most_the_slots():
    neurons = [N(0, "a", 5.0, True), N(1, "b", 9.0, True), N(2, "c", 9.0, True), N(3, "d", 100.0, False)]
    neurons += [N(10 + i, f"v{i}", 1.0, True) for i in range(6)]
    signers = manifest_signers(neurons)
    assert [n.hotkey for n in signers][:3] == ["b", "c", "a"]  # equal stake: the lower uid first
    assert len(signers) == MAX_VALIDATOR_SLOTS and "d" not in {n.hotkey for n in signers}  # no permit, no slot
    assert signer_rank(signers, "c") == 1 and signer_rank(signers, "d") is None


def test_every_order_of_the_neurons_elects_the_same_signers():
    neurons = [N(i, f"h{i}", float(i % 3), i % 2 == 0) for i in range(12)]
    assert manifest_signers(neurons) == manifest_signers(list(reversed(neurons)))


def test_the_best_ranked_signer_wins_and_other_rounds_or_signers_do_not_count():
    signers = manifest_signers([N(0, "top", 9.0, True), N(1, "backup", 5.0, True), N(2, "nobody", 1.0, False)])
    found = [manifest(3, "backup"), manifest(3, "nobody"), manifest(4, "top"), manifest(3, "top")]
    assert best_manifest(found, 3, signers).hotkey == "top"
    assert best_manifest(found[:3], 3, signers).hotkey == "backup"
    assert best_manifest([manifest(3, "nobody"), manifest(4, "top")], 3, signers) is None


def test_backups_sign_only_in_their_own_later_slot():
    schedule = RoundSchedule(genesis=0.0, round_seconds=100.0)
    d = schedule.deadlines(2)
    times = [signing_time(schedule, 2, rank, 3) for rank in range(3)]
    assert times[0] == d.collect_end and times == sorted(times) and times[-1] < d.manifest_end
    assert not may_sign(times[1] - 0.1, times[1], 1, everyone_in=True)  # only rank 0 may sign early
    assert may_sign(times[0] - 10, times[0], 0, everyone_in=True)
    assert not may_sign(times[0] - 10, times[0], 0, everyone_in=False)
    assert may_sign(times[1], times[1], 1, everyone_in=False)
