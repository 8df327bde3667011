"""A slow DHT read leaves the caller with what was pushed and serves the next read of its key."""

import asyncio

import pytest

from node.swarm import reads
from node.swarm.reads import PatientReads


class SlowDHT:
    """Answers each key after `delay` seconds, counting the reads it was asked for."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.asked: list[str] = []

    async def read(self, key: str) -> str:
        self.asked.append(key)
        await asyncio.sleep(self.delay)
        return f"answer to {key}, read #{len(self.asked)}"


def test_a_fast_answer_is_returned_at_once():
    dht = SlowDHT(0.01)

    async def go():
        patient = PatientReads(dht.read, patience=1.0)
        return [await patient.get("k"), await patient.get("k")]

    assert asyncio.run(go()) == ["answer to k, read #1", "answer to k, read #2"]  # each read is a fresh one


def test_a_slow_read_is_not_waited_for_and_the_next_read_takes_its_answer():
    dht = SlowDHT(0.3)

    async def go():
        patient = PatientReads(dht.read, patience=0.1)
        first = await patient.get("k")  # gives up after 0.1 s; the read goes on
        second = await patient.get("k")  # still running: no second read is started
        await asyncio.sleep(0.2)
        third = await patient.get("k")
        return first, second, third

    assert asyncio.run(go()) == (None, None, "answer to k, read #1")
    assert dht.asked == ["k"]


def test_an_old_answer_nobody_came_back_for_is_not_served(monkeypatch):
    monkeypatch.setattr(reads, "ANSWER_KEPT", 0.05)
    dht = SlowDHT(0.1)

    async def go():
        patient = PatientReads(dht.read, patience=0.01)
        assert await patient.get("k") is None
        await asyncio.sleep(0.3)  # the answer came at 0.1 s and is too old by now
        dht.delay = 0.0
        return await patient.get("k")

    assert asyncio.run(go()) == "answer to k, read #2"


def test_a_failed_read_raises_in_its_reader():
    async def broken(key: str) -> str:
        raise RuntimeError("DHT process gone")

    with pytest.raises(RuntimeError, match="gone"):
        asyncio.run(PatientReads(broken, patience=1.0).get("k"))
