"""Payloads and checkpoints travel straight between peers over libp2p streams.

One stream carries one request: the client writes a length-prefixed
FetchRequest, the server answers with a status byte, an 8-byte length and the
bytes. Both sides bound every read: the server refuses requests over the
FetchRequest size, and the client refuses a reply longer than the limit the
caller derived from the run spec, before reading it. The caller then checks
the content hash, so any peer holding the bytes may serve them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from hivemind.p2p import P2P, PeerID

from protocol import wire
from protocol.messages import FetchRequest
from protocol.wire import ProtocolError

log = logging.getLogger(__name__)

STATUS_OK, STATUS_MISSING = 0, 1
REQUEST_TIMEOUT = 10.0

BlobLookup = Callable[[str, bytes], Awaitable[bytes | None]]


class TransferError(Exception):
    """A peer could not or would not deliver the bytes asked for."""


def stream_name(run_id: bytes) -> str:
    return f"gradswarm/{run_id.hex()[:16]}/fetch"


async def serve(p2p: P2P, run_id: bytes, lookup: BlobLookup) -> None:
    """Answer FetchRequests for this run from `lookup(kind, digest)`."""

    async def handle(_info, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), REQUEST_TIMEOUT), "little")
            if size > wire.max_bytes_of(FetchRequest):
                raise ProtocolError(f"fetch request of {size} bytes")
            raw = await asyncio.wait_for(reader.readexactly(size), REQUEST_TIMEOUT)
            request = wire.decode(raw, FetchRequest)
            if request.run_id != run_id:
                raise ProtocolError("fetch request for another run")
            data = await lookup(request.kind, request.digest)
            if data is None:
                writer.write(bytes([STATUS_MISSING]) + (0).to_bytes(8, "little"))
            else:
                writer.write(bytes([STATUS_OK]) + len(data).to_bytes(8, "little"))
                view = memoryview(data)
                for offset in range(0, len(view), 1 << 16):
                    writer.write(view[offset : offset + (1 << 16)])
                    await writer.drain()
            await writer.drain()
        except (ProtocolError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("dropped fetch stream: %s", e)
        finally:
            writer.close()

    await p2p.add_binary_stream_handler(stream_name(run_id), handle)


async def fetch(p2p: P2P, peer_id: PeerID, run_id: bytes, kind: str, digest: bytes, max_bytes: int, timeout: float = 60.0) -> bytes:
    """Bytes for (kind, digest) from `peer_id`, at most `max_bytes`; hash is the caller's to check."""
    request = wire.encode(FetchRequest(run_id=run_id, kind=kind, digest=digest))

    async def exchange() -> bytes:
        _info, reader, writer = await p2p.call_binary_stream_handler(peer_id, stream_name(run_id))
        try:
            writer.write(len(request).to_bytes(4, "little") + request)
            await writer.drain()
            header = await reader.readexactly(9)
            status, size = header[0], int.from_bytes(header[1:], "little")
            if status == STATUS_MISSING:
                raise TransferError(f"{peer_id} does not hold {kind} {digest.hex()[:12]}")
            if status != STATUS_OK:
                raise TransferError(f"{peer_id} answered with unknown status {status}")
            if size > max_bytes:
                raise TransferError(f"{peer_id} offers {size} bytes for a {kind}, limit is {max_bytes}")
            return await reader.readexactly(size)
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except TransferError:
        raise
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError) as e:
        raise TransferError(f"fetching {kind} {digest.hex()[:12]} from {peer_id} failed: {type(e).__name__} {e}") from None
    except Exception as e:  # p2pd control errors (P2PDaemonError, P2PHandlerError) vary by version
        raise TransferError(f"fetching {kind} {digest.hex()[:12]} from {peer_id} failed: {e}") from None


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
