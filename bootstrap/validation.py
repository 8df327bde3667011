"""The nodes' record validator, with counts of what it accepted and why it refused the rest.

The bootstrap must store exactly what nodes store, so it runs the nodes'
`RunRecordValidator` unchanged and only counts its verdicts. The counts live
in hivemind's DHT process (where validation runs); `bootstrap.stats` reads
them from there.
"""

from __future__ import annotations

from collections import Counter

from hivemind.dht.validation import DHTRecord

from node.chain import ChainError, ChainView
from node.swarm.records import RunRecordValidator
from protocol.signing import SignatureError
from protocol.wire import ProtocolError

# The fixed label set of gradswarm_dht_records_rejected_total{reason=...}.
REASONS = (
    "unsigned",  # no signature, or a truncated one
    "bad_signature",  # a signature that does not verify, or a signer that is not an sr25519 address
    "wrong_run",  # validly signed, for another run
    "unregistered",  # the signer is not registered on the subnet
    "no_permit",  # a manifest from a hotkey without a validator permit
    "misplaced",  # stored under a key or subkey its content does not name
    "ttl",  # expires further ahead than any record may
    "chain_unavailable",  # the chain could not be read, so nothing could be admitted
    "malformed",  # anything else: not msgpack, not a wire message, a type the DHT does not hold
)


def reason_for(error: BaseException) -> str:
    """The label for the error `RunRecordValidator.check` raised; `malformed` if none fits better.

    The validator says why in its messages only, so this matches them; the
    tests pin every label to a record that triggers it.
    """
    text = str(error)
    if isinstance(error, ChainError):
        return "chain_unavailable"
    if isinstance(error, SignatureError):
        if "another run" in text:
            return "wrong_run"
        if "missing or truncated" in text:
            return "unsigned"
        return "bad_signature"
    if isinstance(error, ProtocolError):
        if "expires too far" in text:
            return "ttl"
        if "key its content does not name" in text or "subkey is not its signer" in text:
            return "misplaced"
        if "is not registered" in text:
            return "unregistered"
        if "no validator permit" in text:
            return "no_permit"
    return "malformed"


class CountingValidator(RunRecordValidator):
    """`RunRecordValidator` that also counts accepted records and rejections by reason."""

    def __init__(self, run_id: bytes, chain: ChainView) -> None:
        super().__init__(run_id, chain)
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def validate(self, record: DHTRecord) -> bool:
        try:
            self.check(record)
        except Exception as e:  # the same catch-all as the parent: hostile input of any shape
            self.rejected[reason_for(e)] += 1
            return False
        self.accepted += 1
        return True
