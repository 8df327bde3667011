"""The demo's start-up on a terminal: one bar over its phases, and the countdown to round 0.

Calibration, the dataset and corpus, the chain and keys, the bootstraps and the
nodes take tens of seconds before anything trains; without this the demo sat
silent through them. Off a terminal it shows nothing (the lines the demo prints
are what CI logs keep).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from node.progress import on_terminal

PHASES = (
    "calibrating the step time",
    "dataset, tokenizer and corpus",
    "chain and keys",
    "bootstraps",
    "starting the nodes",
    "waiting for round 0",
)


class StartUp:
    """A context manager: `phase(name)` marks the phases done before it; `countdown` waits for round 0."""

    def __init__(self, tty: bool | None = None, phases: tuple[str, ...] = PHASES):
        self.tty = on_terminal(sys.stdout) if tty is None else tty
        self.phases = phases
        self.current = ""
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> StartUp:
        if self.tty:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("demo: {task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=len(self.phases))
        return self

    def phase(self, name: str, detail: str = "") -> None:
        self.current = name
        if self.progress is not None and self.task is not None:
            done = self.phases.index(name) if name in self.phases else 0
            self.progress.update(self.task, description=f"{name}{f' ({detail})' if detail else ''}", completed=done)

    def countdown(self, until: float, keep_waiting: Callable[[], bool] = lambda: True, tick: float = 0.5) -> None:
        """Wait until `until` (unix seconds), the remaining seconds on the bar; stop early once `keep_waiting` says no."""
        self.phase(self.phases[-1])
        while (left := until - time.time()) > 0 and keep_waiting():
            self.phase(self.phases[-1], f"in {left:.0f} s")
            time.sleep(min(tick, left))

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
