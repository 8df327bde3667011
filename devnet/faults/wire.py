"""The fault harness's switch: every host's TAP port on one userspace Ethernet switch that can delay,
drop and partition.

Why not a kernel bridge with ``tc netem``: this machine's kernel (and CI's) has no ``sch_netem``, no tc
classifiers or actions and no NFQUEUE ("Specified qdisc kind is unknown"), so nothing in the kernel
can delay a packet. ``tbf`` does exist, and rate limits stay in the kernel (hosts.py); latency, loss
and partitions are applied here, per frame, as netem would. Loss is drawn from a seeded generator, so
a scenario drops the same share of frames on every run.

A frame from port a to port b waits ``latency[a] + latency[b]`` and survives each port's loss draw:
a port's figures are those of its host's access link, both ways.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import selectors
import struct
import threading
import time
from dataclasses import dataclass, field

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
MAX_FRAME = 65536
BROADCAST = b"\xff" * 6


@dataclass
class Link:
    """One port's access link."""

    latency: float = 0.0  # seconds, one way
    loss: float = 0.0  # share of frames dropped, each way
    group: int = 0  # ports in different groups cannot reach each other (a partition)


@dataclass
class Counters:
    forwarded: int = 0
    dropped_loss: int = 0
    dropped_partition: int = 0
    dropped_full: int = 0  # the receiving port's queue was full (as a real link's would be)


def open_tap(name: str) -> int:
    """A TAP interface `name` (it lives as long as the returned descriptor) for the switch to read."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


@dataclass
class Switch:
    """A learning switch over TAP descriptors, in its own thread; `links` may be changed while it runs."""

    seed: int = 0
    links: dict[str, Link] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._where: dict[bytes, str] = {}  # MAC -> port
        self._queue: list[tuple[float, int, str, bytes]] = []  # (due, seq, port, frame)
        self._seq = 0
        self._random = random.Random(self.seed)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="fault-switch", daemon=True)

    def add_port(self, name: str) -> None:
        fd = open_tap(name)
        with self._lock:
            self._fds[name] = fd
            self.links.setdefault(name, Link())
        self._selector.register(fd, selectors.EVENT_READ, name)
        os.write(self._wake_w, b"p")

    def set_link(self, port: str, **changes: float | int) -> None:
        with self._lock:
            link = self.links[port]
            for key, value in changes.items():
                setattr(link, key, value)

    def partition(self, groups: list[list[str]]) -> None:
        """Cut the ports into `groups`; ports not named stay in group 0 with the first group."""
        with self._lock:
            for link in self.links.values():
                link.group = 0
            for i, ports in enumerate(groups):
                for port in ports:
                    self.links[port].group = i

    def heal(self) -> None:
        self.partition([])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"s")
        self._thread.join(timeout=5)
        for fd in self._fds.values():
            os.close(fd)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        while not self._stopping:
            timeout = max(0.0, self._queue[0][0] - time.monotonic()) if self._queue else 0.5
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    os.read(self._wake_r, 64)
                else:
                    self._drain(key.data, key.fd)
            self._deliver_due()

    def _drain(self, port: str, fd: int) -> None:
        for _ in range(256):  # then let the other ports have a turn
            try:
                frame = os.read(fd, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:  # the host's namespace is gone
                self._selector.unregister(fd)
                return
            if len(frame) >= 14:
                self._forward(port, frame)

    def _forward(self, source: str, frame: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            self._where[frame[6:12]] = source
            dest = self._where.get(frame[:6]) if frame[:6] != BROADCAST else None
            targets = [dest] if dest is not None else [p for p in self._fds if p != source]
            out = self.links[source]
            for port in targets:
                into = self.links[port]
                if out.group != into.group:
                    self.counters.dropped_partition += 1
                elif self._random.random() < out.loss or self._random.random() < into.loss:
                    self.counters.dropped_loss += 1
                else:
                    self._seq += 1
                    heapq.heappush(self._queue, (now + out.latency + into.latency, self._seq, port, frame))

    def _deliver_due(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, port, frame = heapq.heappop(self._queue)
            fd = self._fds.get(port)
            if fd is None:
                continue
            try:
                os.write(fd, frame)
                self.counters.forwarded += 1
            except BlockingIOError:
                self.counters.dropped_full += 1
            except OSError:
                pass  # the host is gone
