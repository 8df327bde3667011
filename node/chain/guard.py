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

Threads and locks do not survive ``fork`` (hivemind forks its DHT process
with the node's ChainView inside the record validator), so a forked child
starts with fresh locks, no queued writes and, through ``after_fork``, a fresh
connection; it keeps the cached answers, as a cache of its own from then on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from node.chain.inflight import Fetch
from node.chain.policy import RetryPolicy
from node.chain.view import ChainError, ChainHealth, ChainUnavailable

log = logging.getLogger(__name__)

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
        self._label = label
        self._policy = policy or RetryPolicy()
        self._fresh_for = dict(fresh_for or {})  # read name -> refresh window; unnamed reads: 0
        self._after_fork = after_fork
        self._cache: dict[str, Any] = {}
        self._cached_at: dict[str, float] = {}
        self._cache_epoch: dict[str, int] = {}
        self._epoch = 0  # writes that went through; reads started before one are stale
        self._failures = 0
        self._next_try = 0.0
        self._last_error = ""
        self._reset_process_state()
        _GUARDS.add(self)

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()  # guards every field; never held across a chain call
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._inflight: dict[str, Fetch] = {}
        self._pending: dict[str, Callable[[], None]] = {}
        self._timer: threading.Timer | None = None

    def _forked(self) -> None:
        # The parent still holds (and retries) the queued writes.
        self._reset_process_state()
        if self._after_fork is not None:
            self._after_fork()

    # Reads -------------------------------------------------------------------

    def read(self, what: str, fetch: Callable[[], T]) -> T:
        """``fetch()``'s answer, or the last good one if the chain is unreachable.

        The returned object is the cached one: callers hand out copies.
        """
        with self._lock:
            if self._fresh(what):
                return self._cache[what]
            has_cache = what in self._cache
            pending = self._inflight.get(what)
            if pending is None or pending.epoch != self._epoch:
                if time.monotonic() < self._next_try:
                    return self._fallback(what, f"backing off after: {self._last_error}")
                job = pending = Fetch(self._epoch, time.monotonic())
                self._inflight[what] = job
                job.start(lambda: self._fetch(what, fetch, job), f"chain-read-{what}")
        # Whoever joins a read already in flight waits only for what is left of
        # the patience, so a hung read costs the callers stale_wait in all.
        patience = self._policy.stale_wait if has_cache else self._policy.first_wait
        wait = max(0.0, patience - (time.monotonic() - pending.started))
        try:
            return pending.result(wait)
        except TimeoutError:
            with self._lock:
                if has_cache and not pending.slow:
                    pending.slow = True
                    log.warning("%s: %s read is slow; using the last answer meanwhile", self._label, what)
                return self._fallback(what, f"no answer within {patience:g} s")
        except ChainUnavailable as e:
            with self._lock:
                return self._fallback(what, str(e))

    def _fetch(self, what: str, fetch: Callable[[], T], job: Fetch) -> T:
        """Runs on the read's thread: the bookkeeping is done before any waiter wakes."""
        try:
            value = fetch()
        except ChainUnavailable as e:
            with self._lock:
                self._done(what, job)
                self._failed(e)
                age = self._age(what)
                delay = self._next_try - time.monotonic()
            fallback = f"using the answer from {age:.0f} s ago" if age is not None else "nothing to fall back on"
            log.warning("%s: cannot read %s (%s); %s; next try in %.1f s", self._label, what, e, fallback, delay)
            raise
        except BaseException:
            with self._lock:
                self._done(what, job)
            raise
        with self._lock:
            self._done(what, job)
            if job.epoch >= self._cache_epoch.get(what, -1):  # never replace a newer answer
                self._cache[what] = value
                self._cached_at[what] = time.monotonic()
                self._cache_epoch[what] = job.epoch
            self._succeeded()
        return value

    def _done(self, what: str, job: Fetch) -> None:
        """Lock held."""
        if self._inflight.get(what) is job:
            del self._inflight[what]

    def _fresh(self, what: str) -> bool:
        """Lock held: whether the cached answer is within its window and no write came after it."""
        age = self._age(what)
        return age is not None and self._cache_epoch[what] == self._epoch and age < self._fresh_for.get(what, 0.0)

    def _fallback(self, what: str, reason: str) -> Any:
        """Lock held: the cached answer, or ChainUnavailable if there is none."""
        if what not in self._cache:
            raise ChainUnavailable(f"{self._label}: cannot read {what} ({reason}) and no earlier answer")
        return self._cache[what]

    def _age(self, what: str) -> float | None:
        at = self._cached_at.get(what)
        return None if at is None else time.monotonic() - at

    # Writes ------------------------------------------------------------------

    def write(self, what: str, submit: Callable[[], None]) -> None:
        """Run ``submit()`` now, or queue it for a retry if the chain is
        unreachable. ``what`` names the write (one queued write per name)."""
        with self._write_lock:
            with self._lock:
                self._pending.pop(what, None)  # superseded by this one
                if time.monotonic() < self._next_try:
                    self._queue(what, submit, f"backing off after: {self._last_error}")
                    return
            try:
                submit()
            except ChainUnavailable as e:
                with self._lock:
                    self._failed(e)
                    self._queue(what, submit, str(e))
                return
            with self._lock:
                self._epoch += 1
                self._succeeded()

    def invalidate(self) -> None:
        """Count a write made without :meth:`write` (the dev chain's registration
        and staking, which must fail loudly rather than be queued): no answer
        read before it is fresh any more."""
        with self._lock:
            self._epoch += 1

    def _queue(self, what: str, submit: Callable[[], None], reason: str) -> None:
        """Lock held."""
        self._pending[what] = submit
        delay = max(0.0, self._next_try - time.monotonic())
        log.warning("%s: cannot %s now (%s); queued, next try in %.1f s", self._label, what, reason, delay)
        self._schedule()

    def _schedule(self) -> None:
        """Lock held: make sure a timer will retry the queued writes when the backoff ends."""
        if not self._pending or (self._timer is not None and self._timer.is_alive()):
            return
        delay = max(0.0, self._next_try - time.monotonic())
        self._timer = threading.Timer(delay, self._retry_pending)
        self._timer.daemon = True
        self._timer.start()

    def _retry_pending(self) -> None:
        """Timer thread: resubmit queued writes, oldest first, until one cannot reach the chain."""
        with self._write_lock:
            with self._lock:
                if self._timer is threading.current_thread():
                    self._timer = None
                queued = list(self._pending.items())
            for what, submit in queued:
                with self._lock:
                    if self._pending.get(what) is not submit:
                        continue  # a newer write replaced it meanwhile
                try:
                    submit()
                except ChainUnavailable as e:
                    with self._lock:
                        self._failed(e)
                        delay = self._next_try - time.monotonic()
                    log.warning("%s: still cannot %s (%s); next try in %.1f s", self._label, what, e, delay)
                    break
                except Exception as e:  # a refusal, or anything else: a timer thread must not die loudly
                    log.warning("%s: dropping queued %s: %s", self._label, what, e)
                    with self._lock:
                        self._pending.pop(what, None)
                    continue
                with self._lock:
                    self._pending.pop(what, None)
                    self._epoch += 1
                    self._succeeded()
                log.info("%s: queued %s went through", self._label, what)
            with self._lock:
                self._schedule()

    # State -------------------------------------------------------------------

    def _failed(self, error: ChainError) -> None:
        """Lock held."""
        self._failures += 1
        self._next_try = time.monotonic() + self._policy.delay(self._failures)
        self._last_error = str(error)

    def _succeeded(self) -> None:
        """Lock held: the chain answered, so the backoff ends and queued writes go now."""
        if self._failures:
            log.info("%s: chain reachable again after %d failed attempts", self._label, self._failures)
        self._failures = 0
        self._next_try = 0.0
        self._last_error = ""
        if self._pending and self._timer is not None:
            self._timer.cancel()  # it may be waiting out the old backoff
            self._timer = None
        self._schedule()

    def health(self) -> ChainHealth:
        with self._lock:
            return ChainHealth(
                reachable=self._failures == 0,
                failures=self._failures,
                retry_in=max(0.0, self._next_try - time.monotonic()) if self._failures else 0.0,
                last_error=self._last_error,
                pending_writes=tuple(self._pending),
            )


_GUARDS: weakref.WeakSet[ChainGuard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for guard in list(_GUARDS):
        guard._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
