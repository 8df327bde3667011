"""Helpers that tests of both kinds import (fixtures are in tests/conftest.py)."""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from bittensor.sp_core import Keypair

T = TypeVar("T")


@functools.cache
def keypair(name: str) -> Keypair:
    """The dev keypair ``//name`` (``//Alice``, ``//Bob``, ...), made once per session."""
    return Keypair.create_from_uri(f"//{name}")


def wait_for(condition: Callable[[], T], timeout: float = 5.0, *, interval: float = 0.01, what: str = "condition") -> T:
    """Poll ``condition`` until it is truthy and return its value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
    return value


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(target: Callable, *args, world: int = 2, timeout: float = 180.0) -> list[int | None]:
    """Run ``target(rank, port, *args)`` in ``world`` spawned processes (a gloo group on a free port); their exit codes."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=target, args=(rank, port, *args)) for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=timeout)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    return [proc.exitcode for proc in procs]
