"""node/round/sync.py: the signed state comes from whoever holds it, and a lying holder is harmless."""

import asyncio
import time
from types import SimpleNamespace

import torch

from node.checkpoint.state import serialize_state
from node.outer.optimizer import OuterState
from node.round.sync import fetch_signed_state
from node.swarm.transfer import TransferError
from protocol.messages import RoundManifest, StateAnnouncement

NUMEL = 16


def announcement(peer: bytes, state_hash: bytes) -> StateAnnouncement:
    return StateAnnouncement(run_id=b"r" * 32, round=5, hotkey=peer.decode(), peer_id=peer, state_hash=state_hash)


class Swarm:
    def __init__(self, served: dict[bytes, bytes], signer_peer: bytes | None):
        self.peer_id = b"me"
        self.served, self.asked = served, []
        self.bindings = SimpleNamespace(peer_of=self._peer_of)
        self.signer_peer = signer_peer

    async def _peer_of(self, hotkey: str) -> bytes | None:
        return self.signer_peer

    async def fetch(self, peer: bytes, kind: str, digest: bytes, max_bytes: int, timeout: float, progress=None) -> bytes:
        self.asked.append(peer)
        if peer not in self.served:
            raise TransferError("offline")
        return self.served[peer]


def board_with(swarm: Swarm, announcements: list[StateAnnouncement]):
    async def read(round_: int):
        assert round_ == 5  # the state a manifest of round 4 produces is θ_5
        return announcements

    return SimpleNamespace(swarm=swarm, announcements=read)


def test_the_signed_state_is_taken_from_the_first_honest_holder():
    good = OuterState.fresh(torch.arange(NUMEL, dtype=torch.float32))
    forged = OuterState.fresh(torch.zeros(NUMEL))
    manifest = RoundManifest(
        run_id=b"r" * 32, round=4, hotkey="signer", base_state_hash=b"b" * 32, entries=(), result_state_hash=good.state_hash()
    )
    swarm = Swarm({b"liar": serialize_state(forged, 5), b"honest": serialize_state(good, 5), b"me": b""}, signer_peer=b"gone")
    found = [
        announcement(b"liar", good.state_hash()),
        announcement(b"me", good.state_hash()),
        announcement(b"honest", good.state_hash()),
        announcement(b"other", b"\x01" * 32),
    ]
    state = asyncio.run(fetch_signed_state(board_with(swarm, found), manifest, NUMEL, deadline=time.time() + 5))
    assert state is not None and state.state_hash() == good.state_hash()
    assert swarm.asked == [b"gone", b"liar", b"honest"]  # the signer first; never ourselves, nor a holder of another state


def test_no_holder_before_the_deadline_means_no_state():
    manifest = RoundManifest(run_id=b"r" * 32, round=4, hotkey="signer", base_state_hash=b"b" * 32, entries=(), result_state_hash=b"x" * 32)
    swarm = Swarm({}, signer_peer=None)
    assert asyncio.run(fetch_signed_state(board_with(swarm, []), manifest, NUMEL, deadline=time.time() + 0.2)) is None
