"""The run's signed records as one node reads and posts them.

Reads keep only records whose signer the chain knows: the DHT validators and
the push inbox should already have refused the rest, so any that still
arrive are counted for the round report instead of reaching the round's
logic. Posts are signed with the node's hotkey and live as long as the
protocol's record lifetimes say (protocol/lifetimes.py).
"""

from __future__ import annotations

import logging
import time
from typing import TypeVar

from node.chain import ChainView
from node.swarm.records import peers_key, round_key, verdict_key
from node.swarm.swarm import Swarm
from protocol import lifetimes, signing
from protocol.messages import (
    ContributionMeta,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.schedule import RoundSchedule
from protocol.signing import Signer

log = logging.getLogger(__name__)

M = TypeVar("M")
R = TypeVar("R", ContributionMeta, RoundManifest, StateAnnouncement, VerificationRecord)


class Board:
    def __init__(self, run_id: bytes, swarm: Swarm, chain: ChainView, keypair: Signer, schedule: RoundSchedule) -> None:
        self.run_id = run_id
        self.swarm = swarm
        self.chain = chain
        self.keypair = keypair
        self.schedule = schedule
        self.unregistered = 0  # signed records from unregistered hotkeys that got past the DHT to us

    async def read(self, key: str, kind: type[M]) -> list[M]:
        found = await self.swarm.get(key, kind)
        registered = {n.hotkey for n in self.chain.neurons()}
        kept = [m for m in found if m.hotkey in registered]  # type: ignore[attr-defined]
        if len(kept) < len(found):
            self.unregistered += len(found) - len(kept)
            log.warning("dropped %d records from unregistered hotkeys under %s", len(found) - len(kept), key)
        return kept

    async def contributions(self, round_: int) -> list[ContributionMeta]:
        return await self.read(round_key(self.run_id, "contrib", round_), ContributionMeta)

    async def manifests(self, round_: int) -> list[RoundManifest]:
        return await self.read(round_key(self.run_id, "manifest", round_), RoundManifest)

    async def announcements(self, round_: int) -> list[StateAnnouncement]:
        return await self.read(round_key(self.run_id, "state", round_), StateAnnouncement)

    async def verdicts(self, round_: int, subject: str) -> list[VerificationRecord]:
        return await self.read(verdict_key(self.run_id, round_, subject), VerificationRecord)

    async def online(self) -> list[PeerBinding]:
        """The DHT peer bindings that have not lapsed: who says it is online now."""
        return [b for b in await self.read(peers_key(self.run_id), PeerBinding) if b.expires_at > time.time()]

    async def post(self, msg: R) -> R:
        """Sign `msg` (unless it is signed already) and store it for as long as its kind lives."""
        signed = msg if msg.signature else signing.sign(msg, self.keypair)
        await self.swarm.put(signed, lifetimes.record_expiry(self.schedule, signed))
        return signed

    async def post_online(self) -> None:
        """Say in the DHT that this hotkey's peer id is online (the chain commitment says it may speak)."""
        binding = PeerBinding(
            run_id=self.run_id,
            hotkey=self.keypair.ss58_address,
            peer_id=self.swarm.peer_id,
            expires_at=lifetimes.binding_expiry(self.schedule, time.time()),
        )
        await self.swarm.put(signing.sign(binding, self.keypair), binding.expires_at)
