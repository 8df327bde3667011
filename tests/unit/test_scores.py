from node.chain import Neuron
from node.outer.selection import select_contributions
from node.verifier.scores import Scoreboard
from protocol.messages import Metric, VerificationRecord

RUN = b"\x01" * 32


def record(verifier, subject, round_, verdict):
    return VerificationRecord(
        run_id=RUN,
        round=round_,
        hotkey=verifier,
        subject=subject,
        payload_digest=b"\0" * 32,
        base_state_hash=b"\0" * 32,
        claimed_base_hash=b"\0" * 32,
        codec="topk",
        assigned_pages=(1,),
        control_pages=(2,),
        page_digests=(b"\1" * 32, b"\2" * 32),
        compared=(),
        metrics=(Metric("work_ratio", 1.0),),
        tolerances=(),
        verdict=verdict,
        reason="",
    )


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
