"""Bulk bytes travel straight between peers over libp2p streams.

One stream carries one request: the client writes a length-prefixed wire
message, the server answers with a status byte, an 8-byte length and the
bytes. Both sides bound every read: the server refuses requests over the
request type's size, and the client refuses a reply longer than the limit the
caller derived from the run spec, before reading it. The caller then checks
the content hash, so any peer holding the bytes may serve them.

Two services use it: payload and state fetches between nodes (FetchRequest,
per run) and audit fetches by auditors (AuditRequest, see node/audit/serve.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hivemind.p2p import P2P, PeerID

from protocol import wire
from protocol.messages import FetchRequest
from protocol.wire import ProtocolError, Rejection

log = logging.getLogger(__name__)

STATUS_OK, STATUS_MISSING = 0, 1
REQUEST_TIMEOUT = 10.0
CHUNK = 1 << 16
# A caller must read the reply at MIN_REPLY_RATE or better: one that stops reading is dropped after
# REQUEST_TIMEOUT + size / MIN_REPLY_RATE seconds, instead of holding the handler and the reply forever.
MIN_REPLY_RATE = 256 << 10  # bytes per second
MAX_STREAMS_PER_PEER = 16  # streams one peer may have open on one handler at once; more are closed unread

R = TypeVar("R")
BlobLookup = Callable[[str, bytes], Awaitable[bytes | None]]
PeerCheck = Callable[[bytes], Awaitable[bool]]  # peer id bytes -> may it use this stream
Progress = Callable[[int, int], None]  # (announced size, bytes just received)


class TransferError(Exception):
    """A peer could not or would not deliver the bytes asked for."""


def stream_name(run_id: bytes) -> str:
    return f"gradswarm/{run_id.hex()[:16]}/fetch"


async def serve_requests(
    p2p: P2P, name: str, request_type: type[R], answer: Callable[[R], Awaitable[bytes | None]], allow: PeerCheck | None = None
) -> None:
    """Answer each `request_type` request on stream `name` with `answer(request)` (None: not held).

    With `allow`, a stream whose caller (the peer id libp2p authenticated) it
    refuses is closed before a byte of it is read.
    """
    limit = wire.max_bytes_of(request_type)
    open_streams: Counter[bytes] = Counter()  # per caller, on this handler

    async def handle(info, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caller = info.peer_id.to_bytes()
        open_streams[caller] += 1
        try:
            if open_streams[caller] > MAX_STREAMS_PER_PEER:
                raise ProtocolError(f"{info.peer_id} already has {MAX_STREAMS_PER_PEER} streams open")
            if allow is not None and not await allow(caller):
                raise ProtocolError(f"caller {info.peer_id} is not bound to a registered hotkey", reason=Rejection.UNREGISTERED)
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), REQUEST_TIMEOUT), "little")
            if size > limit:
                raise ProtocolError(f"request of {size} bytes", reason=Rejection.OVERSIZED)
            raw = await asyncio.wait_for(reader.readexactly(size), REQUEST_TIMEOUT)
            data = await answer(wire.decode(raw, request_type))
            reply = reply_of(data)
            await asyncio.wait_for(send(writer, reply), REQUEST_TIMEOUT + sum(len(part) for part in reply) / MIN_REPLY_RATE)
        except (TimeoutError, ProtocolError, asyncio.IncompleteReadError, ConnectionError) as e:
            log.debug("dropped %s stream: %s", name, e)
            writer.transport.abort()  # a reply nobody reads is discarded, not kept until it drains
        except Exception as e:  # answering hostile input failed in a way nobody foresaw: drop it, serve on
            log.warning("dropped %s stream: %r", name, e)
            writer.transport.abort()
        except asyncio.CancelledError:  # the node stops: asyncio 3.11's stream callback asks a cancelled
            writer.transport.abort()  # handler task for its exception and logs a traceback, so end it quietly
        finally:
            open_streams[caller] -= 1
            if not open_streams[caller]:
                del open_streams[caller]
            writer.close()

    await p2p.add_binary_stream_handler(name, handle)


def reply_of(data: bytes | None) -> list[bytes | memoryview]:
    """The status byte and length, then the bytes in chunks (None: not held)."""
    if data is None:
        return [bytes([STATUS_MISSING]) + (0).to_bytes(8, "little")]
    view = memoryview(data)
    return [bytes([STATUS_OK]) + len(data).to_bytes(8, "little"), *(view[i : i + CHUNK] for i in range(0, len(view), CHUNK))]


async def send(writer: asyncio.StreamWriter, parts: list[bytes | memoryview]) -> None:
    for part in parts:
        writer.write(part)
        await writer.drain()


async def ask(
    p2p: P2P, peer_id: PeerID, name: str, request: object, max_bytes: int, timeout: float = 60.0, progress: Progress | None = None
) -> bytes:
    """The answer of `peer_id` to `request` on stream `name`, at most `max_bytes`.

    With `progress`, it is called with the announced size once the reply's
    header is in, then with each chunk's length as it arrives.
    """
    raw = wire.encode(request)
    what = f"{wire.type_name_of(type(request))} to {peer_id}"

    async def exchange() -> bytes:
        _info, reader, writer = await p2p.call_binary_stream_handler(peer_id, name)
        try:
            writer.write(len(raw).to_bytes(4, "little") + raw)
            await writer.drain()
            header = await reader.readexactly(9)
            status, size = header[0], int.from_bytes(header[1:], "little")
            if status == STATUS_MISSING:
                raise TransferError(f"{peer_id} does not hold what {what} asks for")
            if status != STATUS_OK:
                raise TransferError(f"{peer_id} answered with unknown status {status}")
            if size > max_bytes:
                raise TransferError(f"{peer_id} offers {size} bytes, limit is {max_bytes}")
            if progress is None:
                return await reader.readexactly(size)
            progress(size, 0)
            chunks = []
            for offset in range(0, size, CHUNK):
                chunks.append(await reader.readexactly(min(CHUNK, size - offset)))
                progress(size, len(chunks[-1]))
            return b"".join(chunks)
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except TransferError:
        raise
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError) as e:
        raise TransferError(f"{what} failed: {type(e).__name__} {e}") from None
    except Exception as e:  # p2pd control errors (P2PDaemonError, P2PHandlerError) vary by version
        raise TransferError(f"{what} failed: {e}") from None


async def serve(p2p: P2P, run_id: bytes, lookup: BlobLookup, allow: PeerCheck | None = None) -> None:
    """Answer FetchRequests for this run from `lookup(kind, digest)`, to callers `allow` admits."""

    async def answer(request: FetchRequest) -> bytes | None:
        return await lookup(request.kind, request.digest) if request.run_id == run_id else None

    await serve_requests(p2p, stream_name(run_id), FetchRequest, answer, allow)


async def fetch(
    p2p: P2P,
    peer_id: PeerID,
    run_id: bytes,
    kind: str,
    digest: bytes,
    max_bytes: int,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> bytes:
    """Bytes for (kind, digest) from `peer_id`, at most `max_bytes`; the hash is the caller's to check."""
    request = FetchRequest(run_id=run_id, kind=kind, digest=digest)
    return await ask(p2p, peer_id, stream_name(run_id), request, max_bytes, timeout, progress)
