"""Payload streams between two real libp2p daemons on loopback."""

import asyncio
import hashlib

import pytest
from hivemind.p2p import P2P

from node.swarm import transfer
from node.swarm.transfer import TransferError

RUN = b"\x09" * 32


def test_fetch_bounds_and_errors():
    blob = bytes(range(256)) * 1000
    digest = hashlib.sha256(blob).digest()

    async def lookup(kind, d):
        return blob if (kind, d) == ("payload", digest) else None

    async def scenario():
        server = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        client = await P2P.create(initial_peers=await server.get_visible_maddrs(), host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        try:
            await transfer.serve(server, RUN, lookup)
            got = await transfer.fetch(client, server.peer_id, RUN, "payload", digest, max_bytes=len(blob))
            assert got == blob
            with pytest.raises(TransferError, match="limit"):
                await transfer.fetch(client, server.peer_id, RUN, "payload", digest, max_bytes=len(blob) - 1)
            with pytest.raises(TransferError, match="does not hold"):
                await transfer.fetch(client, server.peer_id, RUN, "payload", b"\0" * 32, max_bytes=10**6)
            with pytest.raises(TransferError, match="does not hold"):
                await transfer.fetch(client, server.peer_id, RUN, "state", digest, max_bytes=10**6)

            # A hostile client announcing a 4 GB request: the server drops the stream and keeps serving.
            _, reader, writer = await client.call_binary_stream_handler(server.peer_id, transfer.stream_name(RUN))
            writer.write((2**32 - 1).to_bytes(4, "little") + b"junk")
            await writer.drain()
            assert await reader.read() == b""
            writer.close()
            # Garbage that is small but not a FetchRequest: dropped too.
            _, reader, writer = await client.call_binary_stream_handler(server.peer_id, transfer.stream_name(RUN))
            writer.write((5).to_bytes(4, "little") + b"\xc1\xc1\xc1\xc1\xc1")
            await writer.drain()
            assert await reader.read() == b""
            writer.close()
            assert await transfer.fetch(client, server.peer_id, RUN, "payload", digest, max_bytes=len(blob)) == blob
        finally:
            await client.shutdown()
            await server.shutdown()

    asyncio.run(scenario())
