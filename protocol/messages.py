"""The signed messages of one run. Every one carries `run_id` (so it is useless in
another run) and `hotkey`, the sr25519 identity that signs it (see `signing`).

Field bounds are part of the protocol: decoding refuses anything larger.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.wire import bounded, message

RUN_ID_BYTES = 32
DIGEST_BYTES = 32  # sha256
SIGNATURE_BYTES = 64  # sr25519
MAX_HOTKEY = 64  # ss58 sr25519 addresses are 47-49 characters
MAX_PEER_ID = 64  # libp2p peer id multihash (ed25519 identity: 38 bytes)
MAX_CODEC_NAME = 32
MAX_MANIFEST_ENTRIES = 256
MAX_SIGNED_MESSAGE_BYTES = 32768  # the wire bound of the largest signed message, a manifest
MAX_BATCH_ROWS = 64


@message("peer_binding", max_bytes=512)
@dataclass(frozen=True)
class PeerBinding:
    """Ties a hotkey to the libp2p peer id it currently serves from; peer ids alone mean nothing."""

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    hotkey: str = bounded(max_len=MAX_HOTKEY)
    peer_id: bytes = bounded(max_len=MAX_PEER_ID)
    expires_at: float  # DHT time; a stale binding cannot be replayed forever
    signature: bytes = bounded(max_len=SIGNATURE_BYTES, default=b"")


@message("contribution_meta", max_bytes=1024)  # 986 with every field at its bound
@dataclass(frozen=True)
class ContributionMeta:
    """Announces a compressed pseudo-gradient for `round`, content-addressed by `digest`."""

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    round: int
    hotkey: str = bounded(max_len=MAX_HOTKEY)
    peer_id: bytes = bounded(max_len=MAX_PEER_ID)
    digest: bytes = bounded(exact_len=DIGEST_BYTES)
    nbytes: int
    codec: str = bounded(max_len=MAX_CODEC_NAME)
    # the hash of the state it was trained from: θ of round RoundSchedule.trained_from(round),
    # which with overlap is the state before the one the round's manifest applies it to
    trained_from: bytes = bounded(exact_len=DIGEST_BYTES)
    # With overlap, the digest of the node's own payload of the round before, whose outer step it took
    # before training (node/outer/head_start.py); empty when it trained from trained_from itself.
    head_start: bytes = bounded(max_len=DIGEST_BYTES, default=b"")
    # The training loss of each row of the first inner step's batch, which starts at that state: a
    # verifier recomputes some of them, so a node that trained from another state cannot claim it.
    first_losses: tuple[float, ...] = bounded(max_len=MAX_BATCH_ROWS, default=())
    signature: bytes = bounded(max_len=SIGNATURE_BYTES, default=b"")


MIN_ENTRY_WEIGHT = 0.5  # a manifest may count one contribution at most twice as much as another


@dataclass(frozen=True)
class ManifestEntry:
    """One contribution by its payload digest; in a manifest also its aggregation weight, which the
    signer derives from on-chain standing (node/outer/selection.py) and the protocol bounds."""

    hotkey: str = bounded(max_len=MAX_HOTKEY)
    digest: bytes = bounded(exact_len=DIGEST_BYTES)
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not MIN_ENTRY_WEIGHT <= self.weight <= 1.0:  # also refuses NaN
            raise ValueError(f"entry weight {self.weight} outside [{MIN_ENTRY_WEIGHT}, 1]")


@message("round_manifest", max_bytes=MAX_SIGNED_MESSAGE_BYTES)
@dataclass(frozen=True)
class RoundManifest:
    """What every node applies in `round`: these contributions, in this order, onto
    the state `base_state_hash`, giving `result_state_hash`.

    The signer computes the result itself before signing, so a node that lands on
    a different hash knows at once that it diverged and re-syncs to the signed one.
    """

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    round: int
    hotkey: str = bounded(max_len=MAX_HOTKEY)  # the signing validator
    base_state_hash: bytes = bounded(exact_len=DIGEST_BYTES)
    entries: tuple[ManifestEntry, ...] = bounded(max_len=MAX_MANIFEST_ENTRIES)
    result_state_hash: bytes = bounded(exact_len=DIGEST_BYTES)
    signature: bytes = bounded(max_len=SIGNATURE_BYTES, default=b"")

    def __post_init__(self) -> None:
        hotkeys = [e.hotkey for e in self.entries]
        if len(set(hotkeys)) != len(hotkeys):
            raise ValueError("a hotkey appears twice in the manifest")


@message("state_announcement", max_bytes=512)
@dataclass(frozen=True)
class StateAnnouncement:
    """`hotkey` holds the model state with `state_hash` at the start of `round` and serves it."""

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    round: int
    hotkey: str = bounded(max_len=MAX_HOTKEY)
    peer_id: bytes = bounded(max_len=MAX_PEER_ID)
    state_hash: bytes = bounded(exact_len=DIGEST_BYTES)
    signature: bytes = bounded(max_len=SIGNATURE_BYTES, default=b"")


MAX_CHECK_PAGES = 32
MAX_METRICS = 48
MAX_COMPARED = 64
MAX_EVIDENCE = 32


@dataclass(frozen=True)
class Metric:
    name: str = bounded(max_len=32)
    value: float


@dataclass(frozen=True)
class Evidence:
    """An earlier trusted record's work statistic about the same subject: an input of the pooled verdict."""

    record: bytes = bounded(exact_len=DIGEST_BYTES)  # the record's digest (node/audit/store.py)
    round: int
    work_z: float


@message("verification_record", max_bytes=24576)
@dataclass(frozen=True)
class VerificationRecord:
    """One verifier's signed verdict on one contribution, naming every input by digest.

    An auditor holding the inputs (θ_r by its state hash, the payloads and the
    page tokens by sha256) re-runs the same checks and must reach the same
    metrics within `tolerances` and the same verdict.
    """

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    round: int
    hotkey: str = bounded(max_len=MAX_HOTKEY)  # the verifier
    subject: str = bounded(max_len=MAX_HOTKEY)  # whose contribution
    payload_digest: bytes = bounded(exact_len=DIGEST_BYTES)
    base_state_hash: bytes = bounded(exact_len=DIGEST_BYTES)  # the state checked against: the round's trained_from
    claimed_base_hash: bytes = bounded(exact_len=DIGEST_BYTES)  # what the subject said it trained from
    head_start: bytes = bounded(max_len=DIGEST_BYTES)  # the subject's head start payload, or empty
    codec: str = bounded(max_len=MAX_CODEC_NAME)
    claimed_losses: tuple[float, ...] = bounded(max_len=MAX_BATCH_ROWS)  # the subject's first_losses
    beacon: bytes = bounded(exact_len=DIGEST_BYTES)  # round r's manifest digest: seeds the windows, unknown while training
    assigned_pages: tuple[int, ...] = bounded(max_len=MAX_CHECK_PAGES)  # all of the subject's pages, in assignment order
    control_pages: tuple[int, ...] = bounded(max_len=MAX_CHECK_PAGES)
    page_digests: tuple[bytes, ...] = bounded(max_len=2 * MAX_CHECK_PAGES)  # assigned, then control
    compared: tuple[ManifestEntry, ...] = bounded(max_len=MAX_COMPARED)  # other contributions of the round
    previous: tuple[ManifestEntry, ...] = bounded(max_len=MAX_COMPARED)  # round r-1's contributions, for copies
    evidence: tuple[Evidence, ...] = bounded(max_len=MAX_EVIDENCE)  # earlier trusted work checks of the subject
    metrics: tuple[Metric, ...] = bounded(max_len=MAX_METRICS)  # prior_* are inputs: the verifier's history
    tolerances: tuple[Metric, ...] = bounded(max_len=MAX_METRICS)
    verdict: str = bounded(max_len=8)  # "pass" | "fail"
    reason: str = bounded(max_len=256)
    signature: bytes = bounded(max_len=SIGNATURE_BYTES, default=b"")

    def __post_init__(self) -> None:
        if self.verdict not in ("pass", "fail"):
            raise ValueError(f"verdict must be pass or fail, not {self.verdict!r}")
        if len(self.page_digests) != len(self.assigned_pages) + len(self.control_pages):
            raise ValueError("one page digest per assigned and control page")
        if any(len(d) != DIGEST_BYTES for d in self.page_digests):
            raise ValueError("page digests are sha256")

    def metric(self, name: str) -> float:
        return next(m.value for m in self.metrics if m.name == name)

    def inputs(self) -> tuple[bytes, ...]:
        """The digests of every blob the record names: the payloads compared and the pages read."""
        unknown = any(m.name == "head_unknown" and m.value == 1.0 for m in self.metrics)  # the verifier holds no such blob
        head = (self.head_start,) if self.head_start and not unknown else ()
        return (self.payload_digest, *head, *(e.digest for e in (*self.compared, *self.previous)), *self.page_digests)


SignedMessage = PeerBinding | ContributionMeta | RoundManifest | StateAnnouncement | VerificationRecord


@message("record_push", max_bytes=MAX_SIGNED_MESSAGE_BYTES + 128)
@dataclass(frozen=True)
class RecordPush:
    """Hands a chain-bound peer one signed record (a wire-encoded SignedMessage) directly,
    beside the DHT, so that honest records do not depend on who stands nearest a DHT key."""

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    record: bytes = bounded(max_len=MAX_SIGNED_MESSAGE_BYTES)


@message("fetch_request", max_bytes=256)
@dataclass(frozen=True)
class FetchRequest:
    """Asks a peer for a blob over a p2p stream: a payload by its sha256, or a state by its state hash."""

    run_id: bytes = bounded(exact_len=RUN_ID_BYTES)
    kind: str = bounded(max_len=16)  # "payload" | "state"
    digest: bytes = bounded(exact_len=DIGEST_BYTES)

    def __post_init__(self) -> None:
        if self.kind not in ("payload", "state"):
            raise ValueError(f"unknown fetch kind {self.kind!r}")


AUDIT_KINDS = ("spec", "index", "record", "blob", "state")
MAX_AUDIT_ROUNDS = 4096


@message("audit_request", max_bytes=256)
@dataclass(frozen=True)
class AuditRequest:
    """An auditor asks a node for its audit store: the run spec, the record digests of
    rounds [first_round, last_round], or one record, input blob or state by digest."""

    kind: str = bounded(max_len=16)
    first_round: int
    last_round: int
    digest: bytes = bounded(exact_len=DIGEST_BYTES)

    def __post_init__(self) -> None:
        if self.kind not in AUDIT_KINDS:
            raise ValueError(f"unknown audit request kind {self.kind!r}")
        if not 0 <= self.last_round - self.first_round < MAX_AUDIT_ROUNDS:
            raise ValueError(f"round range must span 1 to {MAX_AUDIT_ROUNDS} rounds")
