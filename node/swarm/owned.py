"""A hivemind DHT process that does not outlive the process that started it.

hivemind runs the DHT in a child process, which starts its own p2pd. When the node is killed
with SIGKILL (the OOM killer, `kill -9`, a crashed host agent), neither child hears of it: both
kept running, orphaned, still holding the node's libp2p identity, and the restarted node then
refused to start ("Identity ... is already taken by another peer"), found by the fault
harness's kill -9 scenario. The DHT process now watches its parent and, once it is gone, kills
its own children (the p2pd) and exits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import hivemind
import psutil

PARENT_CHECK_SECONDS = 1.0


class OwnedDHT(hivemind.DHT):
    def run(self) -> None:
        parent = os.getppid()
        threading.Thread(target=_end_with, args=(parent,), name="end-with-parent", daemon=True).start()
        super().run()


def _end_with(parent: int) -> None:
    """In the DHT process: once `parent` is gone (we were re-parented), take our p2pd down and exit."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(1)
