"""node/round/states.py: adopting states, and what the node keeps for peers who ask late."""

import asyncio

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
