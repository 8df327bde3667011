"""SIGINT and SIGTERM stop the node through cancellation, not a KeyboardInterrupt in a random frame."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from node.cli import until_signalled


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_work_runs_its_cleanup_and_leaves_no_task_holding_it(signum):
    seen: dict[str, object] = {}

    async def work() -> None:
        async def busy() -> None:  # a background task running Python code when the signal lands
            while True:
                sum(range(1000))
                await asyncio.sleep(0)

        background = asyncio.create_task(busy())
        seen["background"] = background
        try:
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)
            await asyncio.sleep(10)
        finally:
            seen["cleaned"] = True
            background.cancel()

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(until_signalled(work()))
    assert seen["cleaned"]
    assert seen["background"].cancelled()  # it ended by cancellation, not with the interrupt inside it


def test_a_cancellation_that_no_signal_caused_stays_a_cancellation():
    async def main() -> None:
        task = asyncio.create_task(until_signalled(asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
