"""The nodes' record validator, with counts of what it accepted and why it refused the rest.

The bootstrap must store exactly what nodes store, so it runs the nodes'
`RunRecordValidator` unchanged, which already counts its refusals by reason
(`protocol.wire.Rejection`); this adds the count of records it let in. The
counts live in hivemind's DHT process (where validation runs);
`bootstrap.stats` reads them from there.
"""

from __future__ import annotations

from collections.abc import Callable

from hivemind.dht.validation import DHTRecord

from node.chain import ChainView
from node.swarm.records import RunRecordValidator
from protocol.wire import Rejection

# The fixed label set of gradswarm_bootstrap_records_rejected_total{reason=...}: every Rejection.
REASONS = tuple(reason.value for reason in Rejection)


class CountingValidator(RunRecordValidator):
    """`RunRecordValidator` that also counts the records it accepted."""

    def __init__(self, run_id: bytes, chain: ChainView, round_now: Callable[[], int] | None = None) -> None:
        super().__init__(run_id, chain, round_now=round_now)
        self.accepted = 0

    def validate(self, record: DHTRecord) -> bool:
        accepted = super().validate(record)
        self.accepted += accepted
        return accepted
