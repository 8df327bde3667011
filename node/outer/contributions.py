"""A round's contributions as a node collects them: announcements from the swarm,
payloads fetched by digest from chain-bound peers, checked and decoded.

The pool also holds every payload the node has (its own and those it fetched)
and serves them on to peers, but only after the round's reveal time: a payload
handed out earlier could be copied and re-announced as someone else's work.
Announcements first seen after the reveal time are ignored for the same reason.
Fetches run in the background, so a slow or silent peer never holds up the round.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import torch

from node.outer.head_start import Head
from node.swarm.records import round_key
from node.swarm.swarm import Swarm
from node.swarm.transfer import TransferError
from protocol.compression import Codec, CompressionError
from protocol.messages import ContributionMeta, ManifestEntry
from protocol.schedule import RoundSchedule

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 20.0
RegisteredGet = Callable[[str, type], Awaitable[list]]  # a swarm read minus unregistered signers


@dataclass
class Collected:
    """Decoded contributions of one round, by hotkey."""

    metas: dict[str, ContributionMeta] = field(default_factory=dict)
    vectors: dict[str, torch.Tensor] = field(default_factory=dict)
    rejected: set[bytes] = field(default_factory=set)  # digests that failed checks: never retried
    refused: set[str] = field(default_factory=set)  # hotkeys of those digests
    first_seen: dict[str, float] = field(default_factory=dict)  # when each announcement reached us
    pending: dict[str, asyncio.Task] = field(default_factory=dict)  # fetches in flight, by hotkey

    def refuse(self, meta: ContributionMeta) -> None:
        self.rejected.add(meta.digest)
        self.refused.add(meta.hotkey)

    def cancel_pending(self) -> None:
        for task in self.pending.values():
            task.cancel()


def warn_once(reported: set[tuple[str, str]], hotkey: str, message: str, *args: object) -> None:
    """Warn once per hotkey and kind of refusal, then only at DEBUG: a hostile peer that announced
    a terabyte every round filled every node's log with the same warning."""
    first = (hotkey, message) not in reported
    reported.add((hotkey, message))
    log.log(logging.WARNING if first else logging.DEBUG, message + ("" if first else " (again)"), *args)


class ContributionPool:
    def __init__(self, run_id: bytes, swarm: Swarm, get: RegisteredGet, codec: Codec, codec_name: str, schedule: RoundSchedule) -> None:
        self.run_id = run_id
        self.swarm = swarm
        self.get = get
        self.codec = codec
        self.codec_name = codec_name
        self.schedule = schedule
        self.numel = 0  # set once the model is built
        self.payloads: dict[bytes, tuple[int, bytes]] = {}  # digest -> (round, bytes)
        self.rounds: dict[int, Collected] = {}
        self._reported: set[tuple[str, str]] = set()  # (hotkey, refusal) already warned about

    def round(self, r: int) -> Collected:
        return self.rounds.setdefault(r, Collected())

    def add_own(self, meta: ContributionMeta, payload: bytes) -> None:
        self.payloads[meta.digest] = (meta.round, payload)
        collected = self.round(meta.round)
        collected.metas[meta.hotkey] = meta
        collected.vectors[meta.hotkey] = self.codec.decode(payload, self.numel)

    def revealed_payload(self, digest: bytes) -> bytes | None:
        """A payload we hold, once its round's reveal time has passed (what peers may fetch)."""
        held = self.payloads.get(digest)
        if held is None or time.time() < self.schedule.deadlines(held[0]).reveal:
            return None
        return held[1]

    async def poll(self, r: int) -> Collected:
        """Start fetching every newly announced, well-formed contribution of round r."""
        collected = self.round(r)
        key = round_key(self.run_id, "contrib", r)
        metas = await self.get(key, ContributionMeta)
        reveal = self.schedule.deadlines(r).reveal
        for meta in metas:
            pushed = self.swarm.inbox.received(key, meta.hotkey)
            seen = collected.first_seen.setdefault(meta.hotkey, time.time() if pushed is None else pushed)
            if seen > reveal and meta.hotkey not in collected.vectors:
                if meta.digest not in collected.rejected:
                    warn_once(self._reported, meta.hotkey, "ignoring %s's contribution: announced after the reveal time", meta.hotkey)
                    collected.refuse(meta)
                continue
            if time.time() >= reveal and self._wanted(collected, meta):
                collected.pending[meta.hotkey] = asyncio.create_task(self._fetch_into(collected, meta))
        return collected

    def _wanted(self, collected: Collected, meta: ContributionMeta) -> bool:
        if meta.hotkey in collected.vectors or meta.hotkey in collected.pending or meta.digest in collected.rejected:
            return False
        if meta.codec != self.codec_name or meta.nbytes > self.codec.max_payload_bytes(self.numel):
            collected.refuse(meta)
            warn_once(self._reported, meta.hotkey, "rejecting %s's contribution: codec %r, %d bytes", meta.hotkey, meta.codec, meta.nbytes)
            return False
        return True

    async def _fetch_into(self, collected: Collected, meta: ContributionMeta) -> None:
        try:
            data = await self._fetch(meta)
            if data is None:
                return
            vector = await self._decode(data, meta.digest, meta.hotkey)
            if vector is None:
                collected.refuse(meta)
                return
            self.payloads[meta.digest] = (meta.round, data)  # we can serve it on too
            collected.metas[meta.hotkey] = meta
            collected.vectors[meta.hotkey] = vector
        finally:
            collected.pending.pop(meta.hotkey, None)

    async def _decode(self, data: bytes, digest: bytes, author: str) -> torch.Tensor | None:
        """The payload's vector if `data` is what `digest` names and decodes; None (logged) otherwise."""
        if hashlib.sha256(data).digest() != digest:
            log.warning("payload from %s does not match its signed digest", author)
            return None
        try:
            return await asyncio.to_thread(self.codec.decode, data, self.numel)
        except CompressionError as e:
            log.warning("payload from %s rejected: %s", author, e)
            return None

    async def fetch_entry(self, entry: ManifestEntry, signer: str) -> torch.Tensor | None:
        """A manifest entry we lack: ask its author, then the manifest's signer, who holds every payload it named."""
        for hotkey in (entry.hotkey, signer):
            peer_id = await self.swarm.bindings.peer_of(hotkey)
            if peer_id is None:
                continue
            try:
                data = await self.swarm.fetch(
                    peer_id, "payload", entry.digest, self.codec.max_payload_bytes(self.numel), timeout=FETCH_TIMEOUT
                )
            except TransferError:
                continue
            if hashlib.sha256(data).digest() == entry.digest:  # else a bad holder: try the next
                return await self._decode(data, entry.digest, entry.hotkey)
        return None

    async def announced(self, r: int, hotkey: str, digest: bytes) -> Head | None:
        """`hotkey`'s round-r payload `digest`, if it announced that one (fetched from it if we lack it):
        what a contribution of round r+1 may name as its head start."""
        collected = self.rounds.get(r)
        meta = collected.metas.get(hotkey) if collected is not None else None
        if meta is None or meta.digest != digest:
            metas = await self.get(round_key(self.run_id, "contrib", r), ContributionMeta)
            meta = next((m for m in metas if m.hotkey == hotkey and m.digest == digest), None)
        if meta is None or meta.codec != self.codec_name or meta.nbytes > self.codec.max_payload_bytes(self.numel):
            return None  # not announced, or not a payload of this run's codec and size: never fetched
        held = self.payloads.get(digest)
        data = held[1] if held is not None else await self._fetch(meta)
        vector = None if data is None else await self._decode(data, digest, hotkey)
        return None if vector is None else Head(digest, data, vector)

    async def _fetch(self, meta: ContributionMeta) -> bytes | None:
        """The announced payload's bytes from its author (at most the size announced), or None."""
        try:
            return await self.swarm.fetch(meta.peer_id, "payload", meta.digest, meta.nbytes, timeout=FETCH_TIMEOUT)
        except TransferError as e:
            log.info("payload of %s not fetched yet: %s", meta.hotkey, e)
            return None

    def forget_before(self, r: int) -> None:
        for old in [k for k in self.rounds if k < r]:
            self.rounds.pop(old).cancel_pending()
        for digest, (pr, _) in list(self.payloads.items()):
            if pr < r:
                del self.payloads[digest]
