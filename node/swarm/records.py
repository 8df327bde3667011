"""DHT keys for a run's records, and the validator that keeps everything else out.

Each record's key and subkey follow from its signed content, so a validator can
check them without trusting the sender: a ContributionMeta for round r by
hotkey h may only live at (contrib/r, h), signed by h, for this run, with h
registered on the chain. Manifests must also come from a validator permit.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from hivemind.dht.routing import DHTID
from hivemind.dht.validation import DHTRecord, RecordValidatorBase
from hivemind.utils import get_dht_time
from hivemind.utils.serializer import MSGPackSerializer

from node.chain import ChainError, ChainView
from protocol import signing, wire
from protocol.lifetimes import MAX_RECORD_TTL
from protocol.messages import (
    ContributionMeta,
    PeerBinding,
    RoundManifest,
    StateAnnouncement,
    VerificationRecord,
)
from protocol.wire import ProtocolError, Rejection, rejection_of

# The largest wire message we store (a manifest) plus msgpack framing: checked before any decoding.
MAX_RECORD_VALUE_BYTES = (
    max(wire.max_bytes_of(t) for t in (PeerBinding, ContributionMeta, RoundManifest, StateAnnouncement, VerificationRecord)) + 16
)
# Distinct records one hotkey may have us store per (kind, round). An honest node stores one
# contribution, state announcement and manifest per round (re-stores of the same bytes count
# once); a validator stores one verdict per checked subject. Bindings count per hour.
STORE_CAP = {"peers": 8, "contrib": 4, "manifest": 4, "state": 4, "verdict": 256}
BINDING_WINDOW_SECONDS = 3600.0
MAX_TRACKED_SLOTS = 16384  # (hotkey, kind, round) slots remembered; the oldest are forgotten first
# With a round clock, records of rounds outside [now - ROUNDS_BEHIND, now + ROUNDS_AHEAD] are refused: a
# round number costs nothing to mint, so without it one registered hotkey fills a fresh store-cap slot per
# round it names (unbounded DHT storage, and the tracked slots of honest records evicted). The longest-lived
# record, a verdict, lives until 10 rounds after its round starts (protocol/lifetimes.py): 12 leaves slack.
ROUNDS_BEHIND, ROUNDS_AHEAD = 12, 2


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


async def validator_rejections(_dht: Any, node: Any) -> dict[str, int]:
    """Runs in the DHT process (DHT.run_coroutine): the RunRecordValidator's refusal counts."""
    found = node.protocol.record_validator
    for validator in getattr(found, "_validators", [found]):
        if isinstance(validator, RunRecordValidator):
            return dict(validator.rejected)
    return {}


def store_slot(msg: Any) -> tuple[str, str, int]:
    """(hotkey, kind, round) that `msg` counts against in the per-hotkey store cap."""
    if isinstance(msg, PeerBinding):
        return msg.hotkey, "peers", int(get_dht_time() // BINDING_WINDOW_SECONDS)
    kind = {ContributionMeta: "contrib", RoundManifest: "manifest", StateAnnouncement: "state", VerificationRecord: "verdict"}[type(msg)]
    return msg.hotkey, kind, msg.round


class RunRecordValidator(RecordValidatorBase):
    """Accepts only signed records of one run from registered hotkeys, a few per hotkey and round.

    Runs inside hivemind's DHT process, so it holds only picklable state: the
    run id and a ChainView (the dev chain is a file path; the Bittensor adapter
    connects lazily). It asks the view for the neurons on every record: the
    view decides how long its answer stays fresh (node.chain.RefreshWindows).

    The store cap counts distinct record values (by sha256) per (hotkey, kind,
    round), so hivemind re-validating the same record on every store and find
    costs nothing, while a registered hotkey minting fresh records is stopped
    at the cap. Memory is bounded by MAX_TRACKED_SLOTS. `rejected` counts
    refusals by their `Rejection` value, for the node's round reports.
    """

    def __init__(
        self, run_id: bytes, chain: ChainView, store_cap: dict[str, int] | None = None, round_now: Callable[[], int] | None = None
    ):
        self.run_id = run_id
        self.chain = chain
        self.store_cap = dict(store_cap or STORE_CAP)
        self.round_now = round_now  # the DHT process is forked, so a closure over the node's schedule is fine
        self._stored: OrderedDict[tuple[str, str, int], set[bytes]] = OrderedDict()
        self.rejected: Counter[str] = Counter()

    def check(self, record: DHTRecord) -> Any:
        """The record's message if it is acceptable; raises ProtocolError otherwise."""
        if record.expiration_time > get_dht_time() + MAX_RECORD_TTL:
            raise ProtocolError("record expires too far in the future", reason=Rejection.TTL)
        if len(record.value) > MAX_RECORD_VALUE_BYTES:
            raise ProtocolError(f"record value of {len(record.value)} bytes", reason=Rejection.OVERSIZED)
        value = MSGPackSerializer.loads(record.value)
        if not isinstance(value, bytes):
            raise ProtocolError("record value must be a wire message")
        msg = self.decode_signed(value)
        if DHTID.generate(source=key_for(msg)).to_bytes() != record.key:
            raise ProtocolError("record stored under a key its content does not name", reason=Rejection.MISPLACED)
        if MSGPackSerializer.loads(record.subkey) != msg.hotkey:
            raise ProtocolError("record subkey is not its signer's hotkey", reason=Rejection.MISPLACED)
        round_ = getattr(msg, "round", None)
        if self.round_now is not None and round_ is not None:
            now = self.round_now()
            if not now - ROUNDS_BEHIND <= round_ <= now + ROUNDS_AHEAD:
                raise ProtocolError(f"record for round {round_} while round {now} runs", reason=Rejection.OUT_OF_WINDOW)
        self.admit(msg, value)
        return msg

    def decode_signed(self, raw: bytes) -> Any:
        """The signed message of this run that `raw` encodes; raises ProtocolError otherwise."""
        msg = wire.decode(raw)
        key_for(msg)  # only the kinds a run stores
        signing.verify(msg, self.run_id)  # also checks the run id
        return msg

    def admit(self, msg: Any, raw: bytes) -> None:
        """The rules on who may store what: a registered signer, a permit for manifests, the store cap.
        Pushed records (node/swarm/push.py) pass the same rules as DHT records."""
        try:
            signer = next((n for n in self.chain.neurons() if n.hotkey == msg.hotkey), None)
        except ChainError as e:
            raise ProtocolError(f"cannot read the chain: {e}", reason=Rejection.CHAIN_UNAVAILABLE) from e
        if signer is None:
            raise ProtocolError(f"hotkey {msg.hotkey} is not registered", reason=Rejection.UNREGISTERED)
        if isinstance(msg, RoundManifest) and not signer.validator_permit:
            raise ProtocolError(f"manifest signer {msg.hotkey} holds no validator permit", reason=Rejection.NO_PERMIT)
        self._count(store_slot(msg), hashlib.sha256(raw).digest())

    def _count(self, slot: tuple[str, str, int], digest: bytes) -> None:
        """Remember `digest` under `slot`; refuses it past the kind's cap."""
        seen = self._stored.get(slot)
        if seen is None:
            seen = self._stored[slot] = set()
            while len(self._stored) > MAX_TRACKED_SLOTS:
                self._stored.popitem(last=False)
        if digest in seen:
            return
        if len(seen) >= self.store_cap[slot[1]]:
            raise ProtocolError(f"{slot[0]} already stored {len(seen)} {slot[1]} records for {slot[2]}", reason=Rejection.STORE_CAP)
        seen.add(digest)

    def validate(self, record: DHTRecord) -> bool:
        try:
            self.check(record)
        except Exception as e:  # hostile input of any shape is simply not stored
            self.count_refusal(e)
            return False
        return True

    def count_refusal(self, error: BaseException) -> None:
        """Count a refusal under its reason (`rejection_of`: anything but a ProtocolError is malformed)."""
        self.rejected[rejection_of(error).value] += 1

    def merge_with(self, other: RecordValidatorBase) -> bool:
        return isinstance(other, RunRecordValidator) and other.run_id == self.run_id
