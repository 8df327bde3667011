"""DHT reads that do not hold a round up.

Under a partition a hivemind read waits on RPC timeouts to the peers it cannot
reach. In the partition scenario (seeds 2 and 3) nodes saw the announcements
of their own half, pushed to them at once, only when such a read returned,
after the reveal time: they refused them, and each half merged one contribution
instead of two (the store beside it, node/swarm/presence.py, cost the whole
swarm its next round). So a read here waits a while for
the DHT; a slower one keeps running, and the next read of the key takes its
answer. Records under a key only accumulate, so an answer a few seconds old,
merged with what was pushed since, is a subset of a fresh one and never
contradicts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

A = TypeVar("A")

READ_PATIENCE = 2.0  # seconds a read waits for the DHT (a loopback read takes milliseconds)
ANSWER_KEPT = 10.0  # an answer that came after its reader gave up serves the next read this long


class PatientReads(Generic[A]):
    def __init__(self, read: Callable[[str], Awaitable[A]], patience: float = READ_PATIENCE) -> None:
        self._read = read
        self._patience = patience
        self._inflight: dict[str, asyncio.Task[tuple[float, A]]] = {}

    async def get(self, key: str) -> A | None:
        """The DHT's answer for `key`, or None when it takes longer than the patience."""
        self._forget_old()
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.create_task(self._timed(key), name="dht-read")
        done, _ = await asyncio.wait({task}, timeout=self._patience)
        if task not in done:
            return None
        if self._inflight.get(key) is task:
            del self._inflight[key]
        return task.result()[1]

    def cancel(self) -> None:
        for task in self._inflight.values():
            task.cancel()
        self._inflight.clear()

    async def _timed(self, key: str) -> tuple[float, A]:
        answer = await self._read(key)
        return time.monotonic(), answer

    def _forget_old(self) -> None:
        """Drop answers nobody came back for in time (and failed reads: their error is the next read's)."""
        now = time.monotonic()
        for key, task in list(self._inflight.items()):
            if task.done() and (task.cancelled() or task.exception() is not None or now - task.result()[0] > ANSWER_KEPT):
                del self._inflight[key]
