"""One chain read in flight, for :class:`~node.chain.readcache.ReadCache`.

A read runs on its own daemon thread so that whoever waits for it can give up
after a bounded time (and a read hung in the SDK cannot keep the process from
exiting); its answer or exception is handed to every waiter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Fetch:
    """One read in flight. ``epoch`` is the number of writes the guard had let
    through when it started and ``started`` when, on the guard's clock."""

    def __init__(self, epoch: int, started: float) -> None:
        self.epoch = epoch
        self.started = started
        self.slow = False  # a caller has already been told it is slow
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def start(self, run: Callable[[], Any], name: str) -> None:
        threading.Thread(target=self._main, args=(run,), name=name, daemon=True).start()

    def _main(self, run: Callable[[], Any]) -> None:
        try:
            self._value = run()
        except BaseException as e:  # handed to whoever waits, not lost in the thread
            self._error = e
        finally:
            self._done.set()

    def result(self, timeout: float) -> Any:
        """The value, the read's exception, or TimeoutError if still running."""
        if not self._done.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value
