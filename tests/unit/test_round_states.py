"""node/round/states.py: adopting states, and what the node keeps for peers who ask late."""

import asyncio
import time

import torch

from node.checkpoint.state import parse_state
from node.outer.optimizer import OuterState
from node.round.states import KEPT_ROUNDS, StateBook


def state(value: float) -> OuterState:
    return OuterState.fresh(torch.full((16,), value))


def test_adopt_makes_the_state_current_and_keeps_the_last_rounds_for_peers():
    book = StateBook(state(0.0))
    hashes = [book.hash]
    for r in range(1, KEPT_ROUNDS + 3):
        book.adopt(state(float(r)), r)
        hashes.append(book.hash)
        assert book.round == r and book.hash == state(float(r)).state_hash() and book.current.state is book.state
    kept = [h for h in hashes if book.holds(h)]
    assert kept == hashes[-(KEPT_ROUNDS + 1) :]  # θ of the last KEPT_ROUNDS rounds and the current one


def test_adopting_the_same_state_for_the_next_round_keeps_its_hash():
    book = StateBook(state(1.0), round_=4)
    before = book.current
    book.adopt(book.state, 5)  # a round without a manifest: θ_{r+1} = θ_r
    assert book.hash == before.hash and book.round == 5 and before.round == 4  # the old snapshot is unchanged


def test_a_held_state_is_served_as_parseable_bytes_and_an_unknown_one_not_at_all():
    book = StateBook(state(2.0), round_=3)
    data = asyncio.run(book.serialized(book.hash))
    assert parse_state(data, 16).state_hash() == book.hash
    assert asyncio.run(book.serialized(b"\x00" * 32)) is None


def test_states_are_found_by_round_and_a_phase_can_wait_for_one_being_settled():
    book = StateBook(state(0.0))
    book.adopt(state(1.0), 1)
    assert book.at(0).hash == state(0.0).state_hash() and book.at(1) is book.current and book.at(2) is None

    async def settle_later():
        await asyncio.sleep(0.05)
        book.adopt(state(2.0), 2)

    async def wait():
        settling = asyncio.create_task(settle_later())
        got = await book.wait_for(2, until=time.time() + 5)
        await settling
        return got

    assert asyncio.run(wait()).hash == state(2.0).state_hash()
    assert asyncio.run(book.wait_for(5, until=time.time() + 0.05)) is None  # not settled in time
    book.adopt(state(9.0), 4)  # a sync jumped past round 3
    assert asyncio.run(book.wait_for(3, until=time.time() + 5)) is None  # it will never be held: no wait
