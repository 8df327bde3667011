"""An announcement is judged against the reveal by when it reached the node, not when a read showed it."""

import asyncio
import time
from types import SimpleNamespace

from node.config import RunSpec
from node.outer.contributions import ContributionPool
from protocol.compression import get_codec
from protocol.messages import ContributionMeta
from protocol.schedule import RoundSchedule


def poll_after_the_reveal(pushed_at: float | None) -> set[str]:
    """Round 0's reveal has passed when the read returns; the announcement was pushed at `pushed_at`
    (None: the DHT alone had it). Which hotkeys were refused as late."""
    spec = RunSpec()
    schedule = RoundSchedule(time.time() - 60, 10.0)
    meta = ContributionMeta(
        run_id=b"r" * 32, round=0, hotkey="them", peer_id=b"p", digest=b"d" * 32, nbytes=10, codec=spec.codec.name, trained_from=b"b" * 32
    )

    async def read(key, kind):
        return [meta]

    class Swarm:
        inbox = SimpleNamespace(received=lambda key, hotkey: pushed_at)

        async def fetch(self, *args, **kwargs):
            return None  # not held: nothing to decode

    async def go():
        pool = ContributionPool(b"r" * 32, Swarm(), read, get_codec(spec.codec.codec_spec()), spec.codec.name, schedule)
        pool.numel = 8
        collected = await pool.poll(0)
        await asyncio.gather(*collected.pending.values())
        return collected.refused

    return asyncio.run(go())


def test_a_pushed_announcement_that_arrived_before_the_reveal_counts_however_late_it_is_read():
    reveal = RoundSchedule(time.time() - 60, 10.0).deadlines(0).reveal
    assert poll_after_the_reveal(pushed_at=reveal - 1.0) == set()


def test_one_that_arrived_after_it_or_that_only_the_dht_had_is_refused():
    reveal = RoundSchedule(time.time() - 60, 10.0).deadlines(0).reveal
    assert poll_after_the_reveal(pushed_at=reveal + 1.0) == {"them"}
    assert poll_after_the_reveal(pushed_at=None) == {"them"}
