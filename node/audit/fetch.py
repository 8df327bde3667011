"""`gradswarm audit fetch`: copy a live node's records and their inputs into a local audit store.

Everything received is checked before it is written: the spec parses, each
record's bytes hash to the digest the index listed and decode as a signed
record of that run, each input hashes to the digest the record names, and
each state parses and hashes to the state hash the record names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
from hivemind.p2p import P2P, PeerID
from multiaddr import Multiaddr

from node.audit.serve import MAX_INDEX_ENTRIES, STREAM
from node.audit.store import AuditError, AuditStore
from node.checkpoint.state import StateError, max_state_bytes, parse_state
from node.config import MAX_CONFIG_BYTES, parse_run_file
from node.fsutil import atomic_write
from node.swarm.transfer import TransferError, ask
from node.trainer import params
from node.trainer.model import build_model
from protocol import signing, wire
from protocol.compression import get_codec
from protocol.messages import AuditRequest, VerificationRecord
from protocol.wire import ProtocolError

NO_DIGEST = b"\0" * 32


def _peer_id(maddr: str) -> PeerID:
    try:
        return PeerID.from_base58(Multiaddr(maddr).value_for_protocol("p2p"))
    except Exception as e:
        raise AuditError(f"{maddr!r} is not a multiaddr ending in /p2p/<peer id>: {e}") from None


async def fetch_audit(peer: str, first_round: int, last_round: int, out: Path) -> int:
    """Copy records of rounds [first_round, last_round] with their inputs; returns the number of records."""
    peer_id = _peer_id(peer)
    p2p = await P2P.create(initial_peers=[peer], host_maddrs=["/ip4/127.0.0.1/tcp/0"])
    try:
        return await _fetch(p2p, peer_id, first_round, last_round, AuditStore(out))
    except (TransferError, StateError, ProtocolError) as e:
        raise AuditError(str(e)) from None
    finally:
        await p2p.shutdown()


async def _fetch(p2p: P2P, peer_id: PeerID, first: int, last: int, store: AuditStore) -> int:
    async def get(kind: str, max_bytes: int, digest: bytes = NO_DIGEST) -> bytes:
        request = AuditRequest(kind=kind, first_round=first, last_round=last, digest=digest)
        return await ask(p2p, peer_id, STREAM, request, max_bytes)

    spec_text = (await get("spec", MAX_CONFIG_BYTES)).decode("utf-8", "replace")
    try:
        spec, _ = parse_run_file(spec_text)
    except ValueError as e:
        raise AuditError(f"the peer's run spec does not parse: {e}") from None
    atomic_write(store.root / "spec.toml", spec_text.encode())
    numel = params.numel(build_model(spec.model.preset, 0, vocab_size=spec.model.vocab_size))
    codec = get_codec(spec.codec.codec_spec())
    blob_limit = max(codec.max_payload_bytes(numel), spec.data.page_tokens)

    index = msgpack.unpackb(await get("index", 40 * MAX_INDEX_ENTRIES + 16), raw=False, max_array_len=MAX_INDEX_ENTRIES)
    if not isinstance(index, list) or not all(isinstance(d, bytes) and len(d) == 32 for d in index):
        raise AuditError("malformed record index")
    have_states: set[bytes] = set()
    for digest in index:
        data = await get("record", wire.max_bytes_of(VerificationRecord), digest)
        if hashlib.sha256(data).digest() != digest:
            raise AuditError(f"record {digest.hex()[:16]} does not match its digest")
        record = wire.decode(data, VerificationRecord)
        signing.verify(record, spec.run_id)
        if not first <= record.round <= last:
            raise AuditError(f"record {digest.hex()[:16]} is from round {record.round}, outside the range asked for")
        for blob in record.inputs():
            data = await get("blob", blob_limit, blob)
            if hashlib.sha256(data).digest() != blob:
                raise AuditError(f"input {blob.hex()[:16]} does not match its digest")
            store.put_blob(data)
        if record.base_state_hash not in have_states:
            data = await get("state", max_state_bytes(numel), record.base_state_hash)
            state = parse_state(data, numel)
            if state.state_hash() != record.base_state_hash:
                raise AuditError(f"state {record.base_state_hash.hex()[:16]} does not match its hash")
            store.put_state(state, record.base_state_hash, record.round)
            have_states.add(record.base_state_hash)
        store.put_record(record)
    return len(index)
