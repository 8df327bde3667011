"""The write side of a :class:`~node.chain.guard.ChainGuard`: writes run on the
caller's thread, one at a time, and one that cannot reach the chain is queued
and retried by a timer on the backoff schedule (the guard's module docstring
says how they behave)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from node.chain.outage import Outage
from node.chain.view import ChainUnavailable

log = logging.getLogger(__name__)


class WriteQueue:
    """Writes by name, at most one queued per name (a newer one replaces it)."""

    def __init__(self, state: Outage) -> None:
        self._state = state
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._pending: dict[str, Callable[[], None]] = {}
        self._timer: threading.Timer | None = None

    def forked(self) -> None:
        """In a forked child: the parent still holds (and retries) the queued writes."""
        self._write_lock = threading.Lock()
        self._pending = {}
        self._timer = None

    def write(self, what: str, submit: Callable[[], None]) -> None:
        """Run ``submit()`` now, or queue it for a retry if the chain is
        unreachable. ``what`` names the write (one queued write per name)."""
        state = self._state
        with self._write_lock:
            with state.lock:
                self._pending.pop(what, None)  # superseded by this one
                if state.backing_off():
                    self._queue(what, submit, f"backing off after: {state.last_error}")
                    return
            try:
                submit()
            except ChainUnavailable as e:
                with state.lock:
                    state.failed(e)
                    self._queue(what, submit, str(e))
                return
            with state.lock:
                state.epoch += 1
                self.answered()

    def answered(self) -> None:
        """Lock held: the chain answered (a read or a write), so the backoff ends and queued writes go now."""
        self._state.succeeded()
        if self._pending and self._timer is not None:
            self._timer.cancel()  # it may be waiting out the old backoff
            self._timer = None
        self._schedule()

    def pending(self) -> tuple[str, ...]:
        """Lock held: the names of the queued writes, oldest first."""
        return tuple(self._pending)

    def _queue(self, what: str, submit: Callable[[], None], reason: str) -> None:
        """Lock held."""
        self._pending[what] = submit
        log.warning("%s: cannot %s now (%s); queued, next try in %.1f s", self._state.label, what, reason, self._state.retry_in())
        self._schedule()

    def _schedule(self) -> None:
        """Lock held: make sure a timer will retry the queued writes when the backoff ends."""
        if not self._pending or (self._timer is not None and self._timer.is_alive()):
            return
        self._timer = threading.Timer(self._state.retry_in(), self._retry_pending)
        self._timer.daemon = True
        self._timer.start()

    def _retry_pending(self) -> None:
        """Timer thread: resubmit queued writes, oldest first, until one cannot reach the chain."""
        state = self._state
        with self._write_lock:
            with state.lock:
                if self._timer is threading.current_thread():
                    self._timer = None
                queued = list(self._pending.items())
            for what, submit in queued:
                with state.lock:
                    if self._pending.get(what) is not submit:
                        continue  # a newer write replaced it meanwhile
                try:
                    submit()
                except ChainUnavailable as e:
                    with state.lock:
                        state.failed(e)
                        delay = state.retry_in()
                    log.warning("%s: still cannot %s (%s); next try in %.1f s", state.label, what, e, delay)
                    break
                except Exception as e:  # a refusal, or anything else: a timer thread must not die loudly
                    log.warning("%s: dropping queued %s: %s", state.label, what, e)
                    with state.lock:
                        self._pending.pop(what, None)
                    continue
                with state.lock:
                    self._pending.pop(what, None)
                    state.epoch += 1
                    self.answered()
                log.info("%s: queued %s went through", state.label, what)
            with state.lock:
                self._schedule()
