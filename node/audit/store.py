"""The audit store: every VerificationRecord a node made, with every input needed to replay it.

Layout (all content-addressed, all written atomically):

    spec.toml                   the run spec (model architecture, codec, seeds)
    states/<state hash>.st      θ_r as safetensors (its name is its state hash)
    blobs/<sha256>              payloads and token pages
    records/<round>/<sha256>.rec  wire-encoded signed records

Reading checks every name against its content, so a tampered or truncated
file is reported, never silently used.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from node.checkpoint.state import StateError, parse_state, serialize_state
from node.config import NodeConfig, RunSpec, load_run_file, render_run_file
from node.fsutil import atomic_write
from node.outer.optimizer import OuterState
from protocol import wire
from protocol.messages import VerificationRecord
from protocol.wire import ProtocolError

_HEX64 = re.compile(r"[0-9a-f]{64}")


RECORDS, EVIDENCE = "records", "evidence"


def record_path(root: Path, folder: str, round_: int, digest: bytes) -> Path:
    return root / folder / str(round_) / f"{digest.hex()}.rec"


class AuditError(Exception):
    """A missing, corrupt or tampered entry in an audit store."""


class AuditStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    # -------------------------------------------------------------- writing

    def write_spec(self, spec: RunSpec) -> None:
        path = self.root / "spec.toml"
        if not path.exists():
            atomic_write(path, render_run_file(spec, NodeConfig()).encode())

    def put_blob(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        path = self.root / "blobs" / digest.hex()
        if not path.exists():
            atomic_write(path, data)
        return digest

    def put_state(self, state: OuterState, state_hash: bytes, round_: int) -> None:
        path = self.root / "states" / f"{state_hash.hex()}.st"
        if not path.exists():
            atomic_write(path, serialize_state(state, round_))

    def put_record(self, record: VerificationRecord, folder: str = RECORDS) -> bytes:
        """A record of ours (RECORDS, replayed by auditors), or a validator's that a check of ours pooled
        with (EVIDENCE: compared with what our record says it said, not replayed: we lack its inputs)."""
        data = wire.encode(record)
        digest = hashlib.sha256(data).digest()
        path = record_path(self.root, folder, record.round, digest)
        if not path.exists():
            atomic_write(path, data)
        return digest

    def prune(self, before_round: int) -> None:
        """Forget records older than `before_round` (inputs no record names any more go with them)."""
        for folder in [*(self.root / RECORDS).glob("*"), *(self.root / EVIDENCE).glob("*")]:
            if folder.name.isdigit() and int(folder.name) < before_round:
                shutil.rmtree(folder, ignore_errors=True)
        keep_blobs, keep_states = set(), set()
        for _, record in self.records():
            keep_blobs.update(d.hex() for d in record.inputs())
            keep_states.add(record.base_state_hash.hex())
        for path in (self.root / "blobs").glob("*"):
            if path.name not in keep_blobs and not path.name.startswith("."):  # a dot-file is a write in flight
                path.unlink(missing_ok=True)
        for path in (self.root / "states").glob("*.st"):
            if path.stem not in keep_states:
                path.unlink(missing_ok=True)

    # -------------------------------------------------------------- reading

    def spec(self) -> RunSpec:
        try:
            return load_run_file(self.root / "spec.toml")[0]
        except ValueError as e:
            raise AuditError(f"run spec: {e}") from None

    def blob(self, digest: bytes) -> bytes:
        path = self.root / "blobs" / digest.hex()
        try:
            data = path.read_bytes()
        except OSError:
            raise AuditError(f"missing input {digest.hex()[:16]}") from None
        if hashlib.sha256(data).digest() != digest:
            raise AuditError(f"input {digest.hex()[:16]} is corrupt (content does not match its digest)")
        return data

    def state(self, state_hash: bytes, numel: int) -> OuterState:
        path = self.root / "states" / f"{state_hash.hex()}.st"
        try:
            state = parse_state(path.read_bytes(), numel)
        except OSError:
            raise AuditError(f"missing state {state_hash.hex()[:16]}") from None
        except StateError as e:
            raise AuditError(f"state {state_hash.hex()[:16]} is corrupt: {e}") from None
        if state.state_hash() != state_hash:
            raise AuditError(f"state {state_hash.hex()[:16]} is corrupt (content does not match its hash)")
        return state

    def record_paths(self, round_: int | None = None) -> Iterator[Path]:
        folders = (
            [self.root / "records" / str(round_)]
            if round_ is not None
            else sorted((p for p in (self.root / "records").glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
        )
        for folder in folders:
            yield from sorted(folder.glob("*.rec"))

    def read_record(self, path: Path) -> VerificationRecord:
        if not _HEX64.fullmatch(path.stem):
            raise AuditError(f"{path.name}: not a record name")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != path.stem:
            raise AuditError(f"record {path.stem[:16]} is corrupt (content does not match its digest)")
        try:
            return wire.decode(data, VerificationRecord)
        except ProtocolError as e:
            raise AuditError(f"record {path.stem[:16]}: {e}") from None

    def records(self, round_: int | None = None) -> Iterator[tuple[bytes, VerificationRecord]]:
        for path in self.record_paths(round_):
            try:
                yield bytes.fromhex(path.stem), self.read_record(path)
            except AuditError:
                continue  # replay reports these; pruning just skips them
