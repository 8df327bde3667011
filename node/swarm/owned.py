"""A hivemind DHT process that does not outlive the process that started it, and that accepts
peers whose clocks are a few seconds off.

hivemind runs the DHT in a child process, which starts its own p2pd. When the node is killed
with SIGKILL (the OOM killer, `kill -9`, a crashed host agent), neither child hears of it: both
kept running, orphaned, still holding the node's libp2p identity, and the restarted node then
refused to start ("Identity ... is already taken by another peer"), found by the fault
harness's kill -9 scenario. The DHT process now watches its parent and, once it is gone, kills
its own children (the p2pd) and exits.

hivemind refuses to join through a peer whose clock differs from ours by more than 3 s. Machines
without NTP drift by more (the fault harness's +/-5 s scenario could not join at all), while the
protocol itself only needs clocks close enough for its deadlines, which it enforces on its own
(an announcement that arrives after the reveal is ignored, whoever's clock was late). The DHT
process here accepts CLOCK_TOLERANCE_SECONDS; a node further off refuses to start and says by how
much (ClockSkew).

hivemind's daemon client also kept the task of every DHT request whose caller gave up, for the
process's life (found by reading the code while looking for what grows); see
_always_forget_handled_calls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import hivemind
import hivemind.dht.protocol
import psutil
from hivemind.p2p.p2p_daemon_bindings.control import ControlClient


def _always_forget_handled_calls() -> None:
    """hivemind's ControlClient forgets a call's handler task only when the handler runs to its end. A
    call its caller cancels (a timeout, or a peer doing it in a loop) or one for an unknown protocol stays
    in `_handler_tasks` for ever. The wrapper makes the entry go in every case."""
    original = ControlClient._handle_persistent_request
    if getattr(original, "forgets_every_call", False):
        return

    async def handle(self: ControlClient, call_id, request) -> None:
        try:
            await original(self, call_id, request)
        finally:
            self._handler_tasks.pop(call_id, None)

    handle.forgets_every_call = True
    ControlClient._handle_persistent_request = handle


_always_forget_handled_calls()  # at import, so in the DHT process (a fork) too

PARENT_CHECK_SECONDS = 1.0
CLOCK_TOLERANCE_SECONDS = 10.0


class ClockSkew(RuntimeError):
    """This machine's clock is too far from its peers' for the DHT to accept it."""


class OwnedDHT(hivemind.DHT):
    def run(self) -> None:
        # the fork inherits its parent's SIGTERM handler (the bootstrap's only sets an event of the parent):
        # then hivemind's terminate() after a shutdown that hung did nothing, and the parent waited for the
        # DHT process at exit for ever (bootstraps outlived the live fuzzer by 17 min)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        hivemind.dht.protocol.MAX_DHT_TIME_DISCREPANCY_SECONDS = CLOCK_TOLERANCE_SECONDS
        parent = os.getppid()
        threading.Thread(target=_end_with, args=(parent,), name="end-with-parent", daemon=True).start()
        super().run()


def start_dht(**kwargs) -> OwnedDHT:
    """An OwnedDHT, with hivemind's clock refusal turned into a ClockSkew that says what to do."""
    try:
        return OwnedDHT(**kwargs)
    except hivemind.dht.protocol.ValidationError as e:
        if "local time" not in str(e):
            raise
        raise ClockSkew(
            f"this machine's clock is more than {CLOCK_TOLERANCE_SECONDS:.0f} s off its peers' ({e}); "
            "synchronize it (e.g. `timedatectl set-ntp true`) and start the node again"
        ) from None


def _end_with(parent: int) -> None:
    """In the DHT process: once `parent` is gone (we were re-parented), take our p2pd down and exit."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(1)
