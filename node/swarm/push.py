"""Signed records also go straight to every chain-bound peer, beside the DHT.

A DHT key's records live on the few peers whose ids lie nearest to it, and
anyone may run DHT peers. Unregistered identities standing there can drop
honest records, or answer with them mixed among forgeries, which hivemind then
rejects whole: a demo with 10 Sybils beside 3 nodes lost one round's
contributions that way. So each record a node stores in the DHT it also pushes
to every peer id a registered hotkey has bound on chain. The receiver checks it
with the DHT validator's own rules (registered signer, validator permit for
manifests, per-hotkey store cap) and keeps it in its Inbox; reads merge the
DHT's answer with the inbox. Only staked identities can use this path, so no
number of Sybils can keep honest nodes from hearing each other; the DHT stays
the way in for newcomers and auditors.

Cost: one stream of a few hundred bytes per bound peer and record (a node
stores about five records a round). That suits hundreds of peers; beyond that
records would need relaying (gossip) instead of a push to everyone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hivemind.p2p import P2P, PeerID

from node.swarm import records, transfer
from protocol import wire
from protocol.messages import RecordPush
from protocol.wire import ProtocolError, Rejection

log = logging.getLogger(__name__)

PUSH_TIMEOUT = 5.0
INBOX_BYTES = 64 << 20  # pushed records kept at most; more are refused until old rounds are forgotten
SIGNER_SHARE = 16  # one signer may hold at most 1/16 of the inbox: filling it takes 16 registrations
ROUNDS_BEHIND, ROUNDS_AHEAD = 8, 2  # records for other rounds are refused: a round number costs nothing to mint


def stream_name(run_id: bytes) -> str:
    return f"gradswarm/{run_id.hex()[:16]}/push"


@dataclass
class _Held:
    msg: Any
    nbytes: int
    round: int | None  # None for peer bindings, which are replaced rather than forgotten
    received: float  # when it was pushed to us
    filled: bool = False  # a read got it from here because the DHT did not have it


class Inbox:
    """Records pushed to this node, checked like DHT records, one per (key, signer), bounded in bytes.

    Beyond the DHT validator's rules, a registered signer is held to records of
    rounds near the current one (when `round_now` is given) and to a share of
    the inbox, so that one stake cannot crowd out the others' records.
    `accept` may run in a worker thread (the validator reads the chain), so the
    maps are guarded by a lock. `filled` counts the records that reads found
    only here: what the DHT would have lost.
    """

    def __init__(self, validator: records.RunRecordValidator, max_bytes: int = INBOX_BYTES, round_now: Callable[[], int] | None = None):
        self.validator = validator
        self.max_bytes = max_bytes
        self.round_now = round_now
        self.nbytes = 0
        self.filled = 0
        self._by_key: dict[str, dict[str, _Held]] = {}
        self._by_signer: dict[str, int] = {}  # bytes held per signer
        self._lock = threading.Lock()

    def accept(self, raw: bytes) -> bool:
        try:
            msg = self.validator.decode_signed(raw)
            round_ = getattr(msg, "round", None)
            if self.round_now is not None and round_ is not None:
                now = self.round_now()
                if not now - ROUNDS_BEHIND <= round_ <= now + ROUNDS_AHEAD:
                    raise ProtocolError(f"record for round {round_} while round {now} runs", reason=Rejection.OUT_OF_WINDOW)
            self.validator.admit(msg, raw)
        except Exception as e:  # hostile input of any shape is simply not kept
            self.validator.count_refusal(e)
            log.debug("refused a pushed record: %r", e)
            return False
        key = records.key_for(msg)
        with self._lock:
            old = self._by_key.get(key, {}).get(msg.hotkey)
            grows = len(raw) - (old.nbytes if old else 0)
            if self.nbytes + grows > self.max_bytes or self._by_signer.get(msg.hotkey, 0) + grows > self.max_bytes // SIGNER_SHARE:
                log.info(
                    "inbox full (%d bytes, %s holds %d): refusing a pushed record",
                    self.nbytes,
                    msg.hotkey,
                    self._by_signer.get(msg.hotkey, 0),
                )
                return False
            self._by_key.setdefault(key, {})[msg.hotkey] = _Held(msg, len(raw), round_, time.time())
            self.nbytes += grows
            self._by_signer[msg.hotkey] = self._by_signer.get(msg.hotkey, 0) + grows
        return True

    def received(self, key: str, hotkey: str) -> float | None:
        """When the record `hotkey` signed under `key` was pushed to us (None: it was not): a read
        may see it seconds later (node/swarm/reads.py), and a deadline is judged on its arrival."""
        with self._lock:
            held = self._by_key.get(key, {}).get(hotkey)
            return None if held is None else held.received

    def fill(self, key: str, kind: type, found: dict[str, Any]) -> None:
        """Add to `found` (hotkey -> message, what the DHT returned) the `kind` records held for `key`
        from signers it lacks."""
        with self._lock:
            for hotkey, held in self._by_key.get(key, {}).items():
                if hotkey not in found and isinstance(held.msg, kind):
                    found[hotkey] = held.msg
                    if not held.filled:
                        held.filled = True
                        self.filled += 1

    def forget_before(self, round_: int) -> None:
        with self._lock:
            for key, held in list(self._by_key.items()):
                for hotkey, item in list(held.items()):
                    if item.round is not None and item.round < round_:
                        self.nbytes -= item.nbytes
                        self._by_signer[hotkey] -= item.nbytes
                        del held[hotkey]
                if not held:
                    del self._by_key[key]


async def serve(p2p: P2P, run_id: bytes, inbox: Inbox, allow: transfer.PeerCheck) -> None:
    """Take pushed records for this run from callers `allow` admits (chain-bound peers)."""

    async def answer(push: RecordPush) -> bytes | None:
        if push.run_id != run_id:
            return None
        return b"" if await asyncio.to_thread(inbox.accept, push.record) else None

    await transfer.serve_requests(p2p, stream_name(run_id), RecordPush, answer, allow)


async def push(p2p: P2P, peers: list[PeerID], run_id: bytes, msg: object) -> int:
    """Push the signed `msg` to each of `peers` at once; how many took it."""
    request = RecordPush(run_id=run_id, record=wire.encode(msg))

    async def one(peer: PeerID) -> bool:
        try:
            await transfer.ask(p2p, peer, stream_name(run_id), request, max_bytes=0, timeout=PUSH_TIMEOUT)
            return True
        except transfer.TransferError as e:  # offline or refusing: the DHT copy is still there
            log.debug("push to %s failed: %s", peer, e)
            return False

    return sum(await asyncio.gather(*(one(peer) for peer in peers)))
