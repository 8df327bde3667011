"""How long each signed record lives in the DHT.

A record must outlive the moments anyone still needs it: contributions and
state announcements until the next round's late joiners and syncs are done,
manifests for a few rounds of joiners walking back to the last signed state,
verification records for the validators that fold the last rounds' verdicts
into their gather choice. Nobody may pin a record for longer than
MAX_RECORD_TTL, whatever expiry it asks for.
"""

from __future__ import annotations

from protocol.messages import ContributionMeta, RoundManifest, StateAnnouncement, VerificationRecord
from protocol.schedule import RoundSchedule

MAX_RECORD_TTL = 3600.0  # seconds; the DHT validator refuses records that expire later

# Rounds past the end of the record's own round.
ROUNDS_KEPT = {ContributionMeta: 1, StateAnnouncement: 1, RoundManifest: 4, VerificationRecord: 8}
BINDING_ROUNDS = 3  # a DHT peer binding says "online": it lapses three round lengths after it was made


def record_expiry(schedule: RoundSchedule, record: ContributionMeta | StateAnnouncement | RoundManifest | VerificationRecord) -> float:
    """When `record` may leave the DHT (chain time, seconds)."""
    return schedule.deadlines(record.round).end + ROUNDS_KEPT[type(record)] * schedule.round_seconds


def binding_expiry(schedule: RoundSchedule, now: float) -> float:
    return now + BINDING_ROUNDS * schedule.round_seconds
