"""An announcement is judged against the reveal by when it reached the node, not when a read showed it."""

import asyncio
import dataclasses
import logging
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


def test_a_refusal_is_warned_about_once_per_hotkey(caplog):
    """A hostile peer announcing a terabyte every round wrote one warning per round on every node."""
    spec = RunSpec()
    schedule = RoundSchedule(time.time() - 60, 10.0)
    huge = ContributionMeta(
        run_id=b"r" * 32,
        round=0,
        hotkey="them",
        peer_id=b"p",
        digest=b"d" * 32,
        nbytes=10**12,
        codec=spec.codec.name,
        trained_from=b"b" * 32,
    )

    async def go():
        pool = ContributionPool(
            b"r" * 32,
            SimpleNamespace(inbox=SimpleNamespace(received=lambda key, hotkey: 0.0)),
            None,
            get_codec(spec.codec.codec_spec()),
            spec.codec.name,
            schedule,
        )
        pool.numel = 8
        for r in range(3):
            pool.get = lambda key, kind, r=r: asyncio.sleep(0, [dataclasses.replace(huge, round=r)])
            await pool.poll(r)
        return pool

    with caplog.at_level(logging.DEBUG, logger="node.outer.contributions"):
        asyncio.run(go())
    levels = [r.levelno for r in caplog.records if "rejecting them" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
