"""The daemon client forgets every handled call, also those cut short (node.swarm.owned)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from hivemind.p2p.p2p_daemon_bindings.control import ControlClient
from hivemind.proto import p2pd_pb2

import node.swarm.owned  # noqa: F401  (wraps the handler at import)


def _client(handlers: dict) -> SimpleNamespace:
    return SimpleNamespace(
        unary_handlers=handlers, _handler_tasks={}, _pending_messages=asyncio.Queue(), persistent_conn_max_msg_size=1 << 20
    )


def _run(client: SimpleNamespace, proto: str, cancel: bool) -> dict:
    async def main() -> dict:
        call_id = uuid.uuid4()
        request = p2pd_pb2.CallUnaryRequest(proto=proto, data=b"x", peer=b"")
        task = asyncio.create_task(ControlClient._handle_persistent_request(client, call_id, request))
        client._handler_tasks[call_id] = task
        await asyncio.sleep(0.01)
        if cancel:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return client._handler_tasks

    return asyncio.run(main())


async def _never_answers(data: bytes, peer) -> bytes:
    await asyncio.sleep(3600)
    return b""


def test_a_call_cancelled_by_its_caller_is_forgotten():
    assert _run(_client({"/slow": _never_answers}), "/slow", cancel=True) == {}


def test_a_call_for_an_unknown_protocol_is_forgotten():
    assert _run(_client({}), "/nobody", cancel=False) == {}
