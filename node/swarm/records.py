"""DHT keys for a run's records, and the validator that keeps everything else out.

Each record's key and subkey follow from its signed content, so a validator can
check them without trusting the sender: a ContributionMeta for round r by
hotkey h may only live at (contrib/r, h), signed by h, for this run, with h
registered on the chain. Manifests must also come from a validator permit.
"""

from __future__ import annotations

import time
from typing import Any

from hivemind.dht.routing import DHTID
from hivemind.dht.validation import DHTRecord, RecordValidatorBase
from hivemind.utils import get_dht_time
from hivemind.utils.serializer import MSGPackSerializer

from node.chain import ChainView
from protocol import signing, wire
from protocol.messages import (
    ContributionMeta,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.wire import ProtocolError

MAX_RECORD_TTL = 3600.0  # nobody may pin a record in our DHT for longer
CHAIN_CACHE_SECONDS = 12.0  # about one block: registrations show up within a block


def peers_key(run_id: bytes) -> str:
    return f"gradswarm/{run_id.hex()}/peers"


def round_key(run_id: bytes, kind: str, round_: int) -> str:
    return f"gradswarm/{run_id.hex()}/{kind}/{round_}"


def verdict_key(run_id: bytes, round_: int, subject: str) -> str:
    return f"gradswarm/{run_id.hex()}/verdict/{round_}/{subject}"


def key_for(msg: Any) -> str:
    if isinstance(msg, PeerBinding):
        return peers_key(msg.run_id)
    if isinstance(msg, ContributionMeta):
        return round_key(msg.run_id, "contrib", msg.round)
    if isinstance(msg, RoundManifest):
        return round_key(msg.run_id, "manifest", msg.round)
    if isinstance(msg, StateAnnouncement):
        return round_key(msg.run_id, "state", msg.round)
    if isinstance(msg, VerificationRecord):
        return verdict_key(msg.run_id, msg.round, msg.subject)
    raise ProtocolError(f"{type(msg).__name__} is not stored in the DHT")


class RunRecordValidator(RecordValidatorBase):
    """Accepts only signed records of one run from registered hotkeys.

    Runs inside hivemind's DHT process, so it holds only picklable state: the
    run id and a ChainView (the dev chain is a file path; the Bittensor adapter
    connects lazily). The chain's neuron list is cached for a few seconds.
    """

    def __init__(self, run_id: bytes, chain: ChainView):
        self.run_id = run_id
        self.chain = chain
        self._neurons: dict[str, bool] = {}
        self._fetched_at = float("-inf")

    def _permits(self) -> dict[str, bool]:
        now = time.monotonic()
        if now - self._fetched_at > CHAIN_CACHE_SECONDS:
            self._neurons = {n.hotkey: n.validator_permit for n in self.chain.neurons()}
            self._fetched_at = now
        return self._neurons

    def check(self, record: DHTRecord) -> Any:
        """The record's message if it is acceptable; raises ProtocolError otherwise."""
        if record.expiration_time > get_dht_time() + MAX_RECORD_TTL:
            raise ProtocolError("record expires too far in the future")
        value = MSGPackSerializer.loads(record.value)
        if not isinstance(value, bytes):
            raise ProtocolError("record value must be a wire message")
        msg = wire.decode(value)
        signing.verify(msg, self.run_id)  # also checks the run id
        if DHTID.generate(source=key_for(msg)).to_bytes() != record.key:
            raise ProtocolError("record stored under a key its content does not name")
        if MSGPackSerializer.loads(record.subkey) != msg.hotkey:
            raise ProtocolError("record subkey is not its signer's hotkey")
        permits = self._permits()
        if msg.hotkey not in permits:
            raise ProtocolError(f"hotkey {msg.hotkey} is not registered")
        if isinstance(msg, RoundManifest) and not permits[msg.hotkey]:
            raise ProtocolError(f"manifest signer {msg.hotkey} holds no validator permit")
        return msg

    def validate(self, record: DHTRecord) -> bool:
        try:
            self.check(record)
        except Exception:  # hostile input of any shape is simply not stored
            return False
        return True

    def merge_with(self, other: RecordValidatorBase) -> bool:
        return isinstance(other, RunRecordValidator) and other.run_id == self.run_id
