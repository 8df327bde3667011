"""How every ChainView behaves when its chain is slow or gone, written once.

A node must keep training through a chain outage: an RPC endpoint that
restarts, a network partition, a dev-chain file that is briefly locked. So
each chain implementation routes its calls through one :class:`ChainGuard`:

- **Freshness**: an answer younger than its read's refresh window
  (``fresh_for``, from :class:`~node.chain.policy.RefreshWindows`) is served
  from the cache without touching the chain, unless a write went through
  since it was read: every part of a node asks the view as often as it likes,
  and this is the one place that decides when the chain is asked again.
- **Reads** run on a short-lived daemon thread and the caller waits a bounded
  time (``stale_wait`` when there is an earlier answer to fall back on,
  ``first_wait`` when there is not). If the chain fails or is slow, the caller
  gets the last good answer (one warning per failed attempt) and a slow answer
  still lands in the cache when it arrives. Only a read with nothing to fall
  back on raises :class:`ChainUnavailable`. A blocking read can therefore
  never stall the node's event loop for long, whatever the SDK's own
  connection timeouts are.
- **Backoff**: after a failure the chain is left alone for ``first_delay``
  seconds, doubling per consecutive failure up to ``max_delay``; calls in
  between are answered from the cache without touching the chain.
- **Writes** run on the caller's thread. One that cannot reach the chain is
  queued (a newer write of the same kind replaces it) and retried by a timer
  on the backoff schedule, and again as soon as any call gets through;
  refusals by the chain raise :class:`ChainError` at once, or are logged and
  dropped if they come back on a retry. Writes are serialized, so a retried
  old weight row can never overwrite a newer one.

Only :class:`ChainUnavailable` counts as an outage: a definitive refusal
(unregistered hotkey, missing subnet) is an answer and propagates.

A guard is two sides over one shared state: the reads are a
:class:`~node.chain.readcache.ReadCache`, the writes a
:class:`~node.chain.writequeue.WriteQueue`, and both see the chain's
reachability, the count of writes let through and one lock and clock in an
:class:`~node.chain.outage.Outage`.

Threads and locks do not survive ``fork`` (hivemind forks its DHT process
with the node's ChainView inside the record validator), so a forked child
starts with fresh locks, no queued writes and, through ``after_fork``, a fresh
connection; it keeps the cached answers, as a cache of its own from then on.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from typing import TypeVar

from node.chain.outage import Outage
from node.chain.policy import RetryPolicy
from node.chain.readcache import ReadCache
from node.chain.view import ChainHealth
from node.chain.writequeue import WriteQueue

T = TypeVar("T")


class ChainGuard:
    """Retries, backoff and last-good answers for one chain connection; see the
    module docstring. ``label`` names the chain in log lines."""

    def __init__(
        self,
        label: str,
        policy: RetryPolicy | None = None,
        *,
        fresh_for: Mapping[str, float] | None = None,
        after_fork: Callable[[], None] | None = None,
    ) -> None:
        self._state = Outage(label, policy or RetryPolicy())
        self._writes = WriteQueue(self._state)
        self._reads = ReadCache(self._state, fresh_for or {}, answered=self._writes.answered)
        self._after_fork = after_fork
        _GUARDS.add(self)

    def _forked(self) -> None:
        # Fresh locks; the parent still holds (and retries) the queued writes.
        self._state.forked()
        self._reads.forked()
        self._writes.forked()
        if self._after_fork is not None:
            self._after_fork()

    def read(self, what: str, fetch: Callable[[], T]) -> T:
        """``fetch()``'s answer, or the last good one if the chain is unreachable.

        The returned object is the cached one: callers hand out copies.
        """
        return self._reads.read(what, fetch)

    def write(self, what: str, submit: Callable[[], None]) -> None:
        """Run ``submit()`` now, or queue it for a retry if the chain is
        unreachable. ``what`` names the write (one queued write per name)."""
        self._writes.write(what, submit)

    def invalidate(self) -> None:
        """Count a write made without :meth:`write` (the dev chain's registration
        and staking, which must fail loudly rather than be queued): no answer
        read before it is fresh any more."""
        with self._state.lock:
            self._state.epoch += 1

    def health(self) -> ChainHealth:
        state = self._state
        with state.lock:
            return ChainHealth(
                reachable=state.failures == 0,
                failures=state.failures,
                retry_in=state.retry_in() if state.failures else 0.0,
                last_error=state.last_error,
                pending_writes=self._writes.pending(),
            )


_GUARDS: weakref.WeakSet[ChainGuard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for guard in list(_GUARDS):
        guard._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
