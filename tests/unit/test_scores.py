from node.chain import Neuron
from node.outer.selection import select_contributions
from node.verifier.scores import Scoreboard
from tests.support.records import verification_record

RUN = b"\x01" * 32


def record(verifier, subject, round_, verdict, work_z=None):
    metrics = [("work_checked", 1.0), ("work_z", work_z)] if work_z is not None else [("work_checked", 0.0)]
    return verification_record(RUN, verifier, subject, round_, verdict, metrics)


def test_gather_bans_failures_ranks_scores_and_limits_newcomers():
    """Without on-chain standing the local verdicts decide; the ban and the probation slots hold."""
    board = Scoreboard(ban_rounds=4)
    board.add(record("v", "good", 1, "pass"))
    board.add(record("v", "good", 2, "pass"))
    board.add(record("v", "mixed", 1, "pass"))
    board.add(record("w", "cheat", 2, "fail"))
    stakes = {"good": 1.0, "mixed": 5.0, "cheat": 100.0, "new1": 3.0, "new2": 2.0, "new3": 1.0}
    neurons = {h: Neuron(uid, h, stake, False) for uid, (h, stake) in enumerate(stakes.items())}
    chosen = select_contributions(board, neurons, round_=3, gather_size=10, probation_slots=2)
    assert "cheat" not in chosen
    assert set(chosen) == {"good", "mixed", "new1", "new2"}  # two probation slots, highest stakes first
    assert board.counts()["cheat"] == {"pass": 0, "fail": 1}
    # the ban ends after ban_rounds
    assert "cheat" in select_contributions(board, neurons, round_=7, gather_size=10, probation_slots=2)
    # gather_size caps the total, checked hotkeys first
    assert set(select_contributions(board, neurons, round_=3, gather_size=2, probation_slots=2)) == {"good", "mixed"}


def test_one_record_per_verifier_subject_round():
    board = Scoreboard()
    board.add(record("v", "s", 1, "fail"))
    board.add(record("v", "s", 1, "pass"))  # the same record seen again (e.g. from the DHT) replaces, not adds
    assert board.counts()["s"] == {"pass": 1, "fail": 0}
    assert board.score("s") == 1.0 and board.score("unknown") == 0.0 and not board.known("unknown")


def test_evidence_is_the_trusted_work_checks_of_recent_rounds_newest_last():
    board = Scoreboard()
    board.add(record("v", "s", 1, "pass", work_z=2.5))
    board.add(record("w", "s", 3, "pass", work_z=1.0))
    board.add(record("v", "s", 2, "fail"))  # a screen: no work statistic, no evidence
    board.add(record("v", "other", 3, "pass", work_z=9.0))
    board.add(record("v", "s", 5, "pass", work_z=3.0))  # not before round 5
    evidence = board.evidence("s", before_round=5, rounds=4, limit=8)
    assert [(e.round, e.work_z) for e in evidence] == [(1, 2.5), (3, 1.0)]
    assert [e.round for e in board.evidence("s", before_round=5, rounds=3, limit=8)] == [3]
    assert [e.round for e in board.evidence("s", before_round=5, rounds=4, limit=1)] == [3]
    assert len({e.record for e in evidence}) == 2  # each names its record by digest
