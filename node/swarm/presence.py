"""Being reachable as a hotkey: the chain commitment that binds our peer id, and the DHT's "online".

Peers open streams only to peer ids a registered hotkey committed on chain
(node/swarm/binding.py). The commitment is a chain transaction, so it is made
rarely and renewed only when it is about to lapse or the peer id changed; the
short-lived DHT binding, refreshed every round, only says we are still online.
"""

from __future__ import annotations

import asyncio
import logging
import time

from node.chain import ChainError, ChainView
from node.swarm.binding import RENEW_BEFORE, signed_binding
from node.swarm.board import Board

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, board: Board, chain: ChainView) -> None:
        self.board = board
        self.chain = chain
        self._online: asyncio.Task | None = None

    async def bind(self) -> None:
        """Commit the binding on chain when it needs to be, and say we are online. Every round starts
        with this, so the DHT write runs beside the round: under a partition it took 9 s and the
        whole swarm sat the round out, too late to train it."""
        swarm, keypair = self.board.swarm, self.board.keypair
        bindings = swarm.bindings
        await bindings.refresh()
        committed = bindings.committed(keypair.ss58_address)
        if committed is None or committed.peer_id != swarm.peer_id or committed.expires_at < time.time() + RENEW_BEFORE:
            try:
                await asyncio.to_thread(self.chain.set_commitment, keypair, signed_binding(self.board.run_id, keypair, swarm.peer_id))
                bindings.forget()
            except ChainError as e:
                log.warning("could not commit our peer binding on chain: %s", e)
        if self._online is None or self._online.done():
            self._online = asyncio.create_task(self.board.post_online(), name="post-online")
