"""An auditor's fetch of a node's audit records over a real libp2p stream (the `audit_store` fixture)."""

import asyncio

from hivemind.p2p import P2P

from node.audit.fetch import fetch_audit
from node.audit.replay import Replayer
from node.audit.serve import serve_audit
from node.audit.store import AuditStore
from tests.support.swarm import no_states


def test_audit_fetch_over_p2p_then_replay(audit_store, tmp_path):
    """An auditor pulls a node's records and inputs over a real libp2p stream and replays them."""

    async def scenario():
        server = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        try:
            await serve_audit(server, audit_store, no_states)
            maddr = str((await server.get_visible_maddrs())[0])
            count = await fetch_audit(maddr, 0, 3, tmp_path / "fetched")
            assert count == 3
            assert await fetch_audit(maddr, 5, 9, tmp_path / "empty") == 0
        finally:
            await server.shutdown()

    asyncio.run(scenario())
    rows = Replayer(AuditStore(tmp_path / "fetched")).replay_all()
    assert len(rows) == 3 and all(r.agrees for r in rows)
