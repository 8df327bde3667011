"""Resident memory of this node and every process it started (the DHT process, p2pd, torchrun ranks).

Sampled in the background because peaks (payload decoding, state serialization)
fall between round reports; the round report carries the peak so far.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from functools import cache

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


@cache
def _libc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """Give the C heap's free pages back to the OS; False where the C library cannot.

    Why: glibc keeps freed memory in its arenas, and a round frees a lot of it
    (payloads, decoded contributions, the verifier's windows, serialized
    state). In a 3-node control run of the live fuzzer, the main process grew
    from about 500 MiB to 1.5-1.8 GiB over 30-45 rounds, and one malloc_trim(0)
    took it back to 490-530 MiB: the growth was freed memory kept, not live
    objects. Trimming once a round, when the round's buffers are gone, keeps
    that from piling up; it costs milliseconds.
    """
    trim = _libc_trim()
    if trim is None:
        return False
    trim(0)
    return True


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
