"""Progress of long work: a tqdm bar on a terminal, a few INFO log lines otherwise.

A node usually runs with its output in a log file, where a redrawn bar is
thousands of lines of noise. So :class:`Meter` draws a bar only when stderr is
a terminal; otherwise it logs one line as the work starts, one every `every`
seconds while it lasts (never, for work shorter than that), and one with the
totals (bytes or steps, seconds, rate) as it ends.

:class:`Transfer` is the ``progress(size, got)`` callback node/swarm/transfer.py
calls while bytes arrive: a new meter for each transfer it sees start.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import IO

from tqdm import tqdm

_log = logging.getLogger(__name__)
READ_CHUNK = 1 << 22


def on_terminal(stream: IO | None = None) -> bool:
    """Whether `stream` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def amount(n: float, unit: str = "B") -> str:
    """12.3 MB, 999 B, 40 steps."""
    if unit != "B":
        return f"{n:.0f} {unit}s" if n != 1 else f"1 {unit}"
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            break
        n /= 1000
    return f"{n:.0f} B" if not prefix else f"{n:.1f} {prefix}B"


class Meter:
    """One piece of long work, counted in `unit`s (bytes: "B") up to `total` (None: unknown).

    `tty` None: a bar when stderr is a terminal. `delay`: seconds before anything
    shows, so that quick work stays silent (the bar appears late; the log says
    nothing at start and gives the totals only if the work took at least that
    long). `enabled` false: nothing at all.
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "B",
        log: logging.Logger | None = None,
        tty: bool | None = None,
        every: float = 30.0,
        delay: float = 0.0,
        enabled: bool = True,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.log = log or _log
        self.every, self.delay, self.enabled = every, delay, enabled
        self.n = 0
        self.started = self._last_line = time.monotonic()
        self.closed = False
        self.bar: tqdm | None = None
        if not enabled:
            return
        if on_terminal() if tty is None else tty:
            self.bar = tqdm(
                total=total, desc=what, unit=unit, unit_scale=unit == "B", unit_divisor=1000, delay=delay, leave=True, dynamic_ncols=True
            )
        elif delay <= 0:
            self.log.info("%s: started%s", what, f", {amount(total, unit)}" if total is not None else "")

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self._last_line >= self.every:
            self._last_line = now
            share = f"{100 * self.n / self.total:.0f}% " if self.total else ""
            self.log.info("%s: %s%s so far, %s", self.what, share, amount(self.n, self.unit), self.rate())

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> str:
        per_second = self.n / max(self.seconds(), 1e-9)
        return f"{amount(per_second)}/s" if self.unit == "B" else f"{per_second:.3g} {self.unit}s/s"

    def close(self, ok: bool = True) -> None:
        """Finish: the totals line (only when `ok`, and for delayed meters only if it took that long)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and ok and self.seconds() >= self.delay:
            self.log.info("%s: %s in %.1f s (%s)", self.what, amount(self.n, self.unit), self.seconds(), self.rate())

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(ok=kind is None)


class Transfer:
    """The ``progress(size, got)`` callback of node/swarm/transfer.py as a :class:`Meter`.

    ``got == 0`` announces a transfer of `size` bytes: after one that already
    counted bytes, it is a new one (a retry, another peer) and gets a new meter.
    :meth:`start` shows it before the first header arrives (or when the caller
    cannot pass the callback on); :meth:`done` ends it with the totals.
    """

    def __init__(self, what: str, log: logging.Logger | None = None, **options):
        self.what, self.log, self.options = what, log, options
        self.meter: Meter | None = None

    def start(self, total: int | None = None) -> Meter:
        if self.meter is None or self.meter.closed:
            self.meter = Meter(self.what, total, log=self.log, **self.options)
        elif total is not None:
            self.meter.set_total(total)
        return self.meter

    def __call__(self, size: int, got: int) -> None:
        if not got:
            if self.meter is not None and self.meter.n:
                self.meter.close(ok=False)
            self.start(size)
            return
        meter = self.start()
        meter.update(got)
        if meter.total is not None and meter.n >= meter.total:
            meter.close()

    def done(self, nbytes: int | None = None) -> None:
        """The bytes are in: count any the callback did not see, log the totals."""
        meter = self.start() if self.meter is None else self.meter
        if nbytes is not None and nbytes > meter.n and not meter.closed:
            meter.update(nbytes - meter.n)
        meter.close()

    def close(self) -> None:
        """Abandon the transfer (it failed): close the bar, no totals line."""
        if self.meter is not None:
            self.meter.close(ok=False)


def read_file(path: Path, what: str, log: logging.Logger | None = None, delay: float = 1.0, **options) -> bytes:
    """The bytes of `path`, with a meter that only shows if reading takes at least `delay` seconds."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        with Meter(what, size, log=log, delay=delay, **options) as meter:
            chunks = []
            while chunk := f.read(READ_CHUNK):
                chunks.append(chunk)
                meter.update(len(chunk))
    return b"".join(chunks)
