"""The states θ this node holds: the newest, and those of the last few rounds, by hash and by round.

Peers that fell behind or joined late fetch a signed state from anyone holding
it, so a node keeps the states of the last KEPT_ROUNDS rounds, and serializes
each at most once however many peers ask for it. With overlap, round r trains
from θ_{r-1} while round r-1's exchange settles θ_r, so phases ask for a state
by round and may wait for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from node.checkpoint.state import serialize_state
from node.outer.optimizer import OuterState

KEPT_ROUNDS = 3  # states kept for peers that ask late


@dataclass(frozen=True)
class Base:
    """The state a round starts from, fixed when the round begins: every phase of round r works from
    this snapshot, not from whatever the node holds by the time the phase runs."""

    round: int  # the round this state is θ of
    state: OuterState
    hash: bytes


class StateBook:
    def __init__(self, initial: OuterState, round_: int = 0) -> None:
        self._held: dict[bytes, tuple[int, OuterState]] = {}
        self._by_round: dict[int, Base] = {}
        self._changed = asyncio.Event()
        self._serialized: dict[bytes, bytes] = {}  # the one state most recently served
        self._serialize_lock = asyncio.Lock()
        self.adopt(initial, round_)

    def adopt(self, state: OuterState, round_: int) -> None:
        """From now on `state` is θ_round_; states older than KEPT_ROUNDS before it are dropped."""
        self.current = Base(round_, state, state.state_hash())
        self._held[self.current.hash] = (round_, state)
        self._by_round[round_] = self.current
        for digest, (r, _) in list(self._held.items()):
            if r < round_ - KEPT_ROUNDS:
                del self._held[digest]
        for r in [r for r in self._by_round if r < round_ - KEPT_ROUNDS or r > round_]:
            del self._by_round[r]  # older than kept, or from a future this state replaced
        self._changed.set()
        self._changed = asyncio.Event()

    def at(self, round_: int) -> Base | None:
        """θ_round_ if this node holds it."""
        return self._by_round.get(round_)

    async def wait_for(self, round_: int, until: float) -> Base | None:
        """θ_round_ once this node holds it, or None if it does not by `until` (wall-clock seconds)."""
        while (held := self.at(round_)) is None and self.round < round_:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, until - time.time()))
            except TimeoutError:
                return None
        return held

    @property
    def state(self) -> OuterState:
        return self.current.state

    @property
    def hash(self) -> bytes:
        return self.current.hash

    @property
    def round(self) -> int:
        return self.current.round

    def holds(self, digest: bytes) -> bool:
        return digest in self._held

    async def serialized(self, digest: bytes) -> bytes | None:
        """The held state `digest` as peers fetch it, or None when it is not held (any more)."""
        held = self._held.get(digest)
        if held is None:
            return None
        async with self._serialize_lock:  # serialize each state once, however many peers ask
            if digest not in self._serialized:
                self._serialized = {digest: await asyncio.to_thread(serialize_state, held[1], held[0])}
            return self._serialized[digest]
