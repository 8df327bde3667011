"""Resident memory of this node and every process it started (the DHT process, p2pd, torchrun ranks).

Sampled in the background because peaks (payload decoding, state serialization)
fall between round reports; the round report carries the peak so far.
"""

from __future__ import annotations

import asyncio
import os

import psutil

SAMPLE_SECONDS = 1.0


def tree_rss(pid: int | None = None) -> int:
    """Bytes resident in process `pid` (default: this one) and all its descendants right now."""
    root = psutil.Process(pid or os.getpid())
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited between listing and reading
    return total


class PeakRss:
    """The largest tree_rss() seen while `watch()` runs."""

    def __init__(self) -> None:
        self.peak = 0
        self.last = 0  # the latest sample

    def sample(self) -> int:
        now = tree_rss()
        self.peak = max(self.peak, now)
        self.last = now
        return now

    async def watch(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(SAMPLE_SECONDS)
