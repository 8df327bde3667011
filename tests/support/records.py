"""A minimal VerificationRecord for tests of what holds, counts or relays records (not of the checks)."""

from protocol.messages import Metric, VerificationRecord


def verification_record(run_id: bytes, hotkey: str, subject: str, round_: int, verdict: str, metrics=()) -> VerificationRecord:
    return VerificationRecord(
        run_id=run_id,
        round=round_,
        hotkey=hotkey,
        subject=subject,
        payload_digest=b"\0" * 32,
        base_state_hash=b"\0" * 32,
        claimed_base_hash=b"\0" * 32,
        head_start=b"",
        codec="topk",
        claimed_losses=(),
        beacon=b"\3" * 32,
        assigned_pages=(1,),
        control_pages=(2,),
        page_digests=(b"\1" * 32, b"\2" * 32),
        compared=(),
        previous=(),
        evidence=(),
        metrics=tuple(Metric(k, v) for k, v in metrics),
        tolerances=(),
        verdict=verdict,
        reason="",
    )
