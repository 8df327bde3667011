"""What the two sides of a :class:`~node.chain.guard.ChainGuard` share.

The read side (:class:`~node.chain.readcache.ReadCache`) and the write side
(:class:`~node.chain.writequeue.WriteQueue`) of one guard see one chain, so
they share one :class:`Outage`: whether the chain is reachable (consecutive
failures, when to try it next, the last error), how many writes have gone
through (a read started before one is stale), the lock that guards all of
it and both sides' own fields, and the clock that times them.
"""

from __future__ import annotations

import logging
import threading
import time

from node.chain.policy import RetryPolicy
from node.chain.view import ChainError

log = logging.getLogger(__name__)


class Outage:
    """The reachability of one chain, and the epoch its reads are fresh in.
    ``label`` names the chain in log lines. The fields are read and written
    with ``lock`` held; the lock is never held across a chain call."""

    def __init__(self, label: str, policy: RetryPolicy) -> None:
        self.label = label
        self.policy = policy
        self.epoch = 0  # writes that went through; reads started before one are stale
        self.failures = 0
        self.next_try = 0.0
        self.last_error = ""
        self.lock = threading.Lock()

    def forked(self) -> None:
        """In a forked child: a lock some parent thread held would never be released."""
        self.lock = threading.Lock()

    @staticmethod
    def now() -> float:
        """The guard's clock: refresh windows, patience and backoff are all timed on it."""
        return time.monotonic()

    def backing_off(self) -> bool:
        """Lock held: whether the chain is to be left alone for now."""
        return self.now() < self.next_try

    def retry_in(self) -> float:
        """Lock held: seconds until the chain is tried again."""
        return max(0.0, self.next_try - self.now())

    def failed(self, error: ChainError) -> None:
        """Lock held: one more consecutive failure; the backoff grows."""
        self.failures += 1
        self.next_try = self.now() + self.policy.delay(self.failures)
        self.last_error = str(error)

    def succeeded(self) -> None:
        """Lock held: the chain answered, so the backoff ends."""
        if self.failures:
            log.info("%s: chain reachable again after %d failed attempts", self.label, self.failures)
        self.failures = 0
        self.next_try = 0.0
        self.last_error = ""
