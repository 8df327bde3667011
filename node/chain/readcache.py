"""The read side of a :class:`~node.chain.guard.ChainGuard`: answers cached for
their refresh windows, last good answers through an outage, and reads in
flight that callers wait on for a bounded time (the guard's module docstring
says how they behave)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from node.chain.inflight import Fetch
from node.chain.outage import Outage
from node.chain.view import ChainUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReadCache:
    """The last answer to each read, by name. ``fresh_for`` maps read names to
    refresh windows (unnamed reads: 0); ``answered`` is called, lock held,
    whenever the chain answers a read."""

    def __init__(self, state: Outage, fresh_for: Mapping[str, float], answered: Callable[[], None]) -> None:
        self._state = state
        self._fresh_for = dict(fresh_for)
        self._answered = answered
        self._cache: dict[str, Any] = {}
        self._cached_at: dict[str, float] = {}
        self._cache_epoch: dict[str, int] = {}
        self._inflight: dict[str, Fetch] = {}

    def forked(self) -> None:
        """In a forked child: the reads in flight stayed in the parent's threads."""
        self._inflight = {}

    def read(self, what: str, fetch: Callable[[], T]) -> T:
        """``fetch()``'s answer, or the last good one if the chain is unreachable.

        The returned object is the cached one: callers hand out copies.
        """
        state = self._state
        with state.lock:
            if self._fresh(what):
                return self._cache[what]
            has_cache = what in self._cache
            pending = self._inflight.get(what)
            if pending is None or pending.epoch != state.epoch:
                if state.backing_off():
                    return self._fallback(what, f"backing off after: {state.last_error}")
                job = pending = Fetch(state.epoch, state.now())
                self._inflight[what] = job
                job.start(lambda: self._fetch(what, fetch, job), f"chain-read-{what}")
        # Whoever joins a read already in flight waits only for what is left of
        # the patience, so a hung read costs the callers stale_wait in all.
        patience = state.policy.stale_wait if has_cache else state.policy.first_wait
        wait = max(0.0, patience - (state.now() - pending.started))
        try:
            return pending.result(wait)
        except TimeoutError:
            with state.lock:
                if has_cache and not pending.slow:
                    pending.slow = True
                    log.warning("%s: %s read is slow; using the last answer meanwhile", state.label, what)
                return self._fallback(what, f"no answer within {patience:g} s")
        except ChainUnavailable as e:
            with state.lock:
                return self._fallback(what, str(e))

    def _fetch(self, what: str, fetch: Callable[[], T], job: Fetch) -> T:
        """Runs on the read's thread: the bookkeeping is done before any waiter wakes."""
        state = self._state
        try:
            value = fetch()
        except ChainUnavailable as e:
            with state.lock:
                self._done(what, job)
                state.failed(e)
                age = self._age(what)
                delay = state.retry_in()
            fallback = f"using the answer from {age:.0f} s ago" if age is not None else "nothing to fall back on"
            log.warning("%s: cannot read %s (%s); %s; next try in %.1f s", state.label, what, e, fallback, delay)
            raise
        except BaseException:
            with state.lock:
                self._done(what, job)
            raise
        with state.lock:
            self._done(what, job)
            if job.epoch >= self._cache_epoch.get(what, -1):  # never replace a newer answer
                self._cache[what] = value
                self._cached_at[what] = state.now()
                self._cache_epoch[what] = job.epoch
            self._answered()
        return value

    def _done(self, what: str, job: Fetch) -> None:
        """Lock held."""
        if self._inflight.get(what) is job:
            del self._inflight[what]

    def _fresh(self, what: str) -> bool:
        """Lock held: whether the cached answer is within its window and no write came after it."""
        age = self._age(what)
        return age is not None and self._cache_epoch[what] == self._state.epoch and age < self._fresh_for.get(what, 0.0)

    def _fallback(self, what: str, reason: str) -> Any:
        """Lock held: the cached answer, or ChainUnavailable if there is none."""
        if what not in self._cache:
            raise ChainUnavailable(f"{self._state.label}: cannot read {what} ({reason}) and no earlier answer")
        return self._cache[what]

    def _age(self, what: str) -> float | None:
        at = self._cached_at.get(what)
        return None if at is None else self._state.now() - at
