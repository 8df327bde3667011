"""Keeping a node's p2p stack alive: rejoining through the bootstraps, replacing a dead daemon,
and never waiting forever on the DHT process.

A node left with no connected peer re-dials its bootstrap list with exponential backoff until one
answers. A p2pd that stops answering (killed, out of memory) leaves the node deaf and mute while it
still trains; before this watch such a node signed one-contribution manifests of its own in its
backup slot and forked (the fault harness's p2pd scenario). Now, after DAEMON_CHECKS unanswered
checks, or when the DHT process is gone, the stack is replaced by a new one with the same identity,
so the peer id bound on chain stays valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import hivemind
from hivemind.dht.node import DHTNode
from hivemind.p2p import PeerID
from hivemind.utils.multiaddr import Multiaddr

if TYPE_CHECKING:
    from node.swarm.swarm import Swarm

log = logging.getLogger(__name__)

A = TypeVar("A")

WATCH_SECONDS = 5.0  # how often a node checks its daemon and that it still has peers
REJOIN_FIRST_DELAY = 2.0  # then doubling after every failed round of dials ...
REJOIN_MAX_DELAY = 120.0  # ... up to this
DHT_CALL_SECONDS = 20.0  # a DHT read or write that takes longer is given up
DAEMON_CHECKS = 3  # consecutive watches the p2p daemon left unanswered before it is replaced


async def dht_answer(future: Awaitable[A], what: str, otherwise: A) -> A:
    """What the DHT process answers, or `otherwise` after DHT_CALL_SECONDS: a DHT process that died
    never answers, and round tasks waiting on one kept the node from ever exiting."""
    try:
        return await asyncio.wait_for(future, DHT_CALL_SECONDS)
    except TimeoutError:
        log.warning("%s: the DHT did not answer within %.0f s", what, DHT_CALL_SECONDS)
        return otherwise


async def rejoin(_dht: hivemind.DHT, node: DHTNode, maddrs: tuple[str, ...]) -> int:
    """Runs in the DHT process: dial each bootstrap, ping it into the routing table,
    then look ourselves up to find the rest of the swarm. How many bootstraps answered."""
    answered = 0
    for maddr in maddrs:
        try:
            addr = Multiaddr(maddr)
            peer = PeerID.from_base58(addr.value_for_protocol("p2p"))
            # hivemind's P2P has no public connect; its own identity check uses the client's.
            # Dial with the listed address: after a long outage p2pd may no longer hold one.
            await node.p2p._client.connect(peer, [addr.decapsulate(Multiaddr(f"/p2p/{peer.to_base58()}"))])
        except Exception as e:  # unreachable, refused, malformed: try the next one
            log.debug("could not dial bootstrap %s: %r", maddr, e)
            continue
        if await node.protocol.call_ping(peer) is not None:
            answered += 1
    if answered:
        await node.find_nearest_nodes([node.node_id])
    return answered


async def watch(swarm: Swarm) -> None:
    """Every WATCH_SECONDS: is the daemon answering (else replace the stack), is any peer connected
    (else re-dial the bootstraps)."""
    delay, unanswered = REJOIN_FIRST_DELAY, 0
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        assert swarm.dht is not None and swarm.p2p is not None
        try:
            peers = await asyncio.wait_for(swarm.p2p.list_peers(), WATCH_SECONDS)
            unanswered = 0
        except Exception as e:
            unanswered += 1
            if unanswered >= DAEMON_CHECKS or not swarm.dht.is_alive():
                log.error("the p2p daemon stopped answering (%r): starting a new one", e)
                await replace_stack(swarm)
                unanswered = 0
            continue
        try:
            while not peers and swarm.bootstrap:
                log.warning("no peers left: re-dialing %d bootstrap peers", len(swarm.bootstrap))
                dialing = swarm.dht.run_coroutine(partial(rejoin, maddrs=tuple(swarm.bootstrap)), return_future=True)
                if answered := await dht_answer(dialing, "re-dialing the bootstraps", 0):
                    log.info("rejoined the swarm through %d of %d bootstrap peers", answered, len(swarm.bootstrap))
                    delay = REJOIN_FIRST_DELAY
                    break
                log.warning("no bootstrap peer answered; next try in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, REJOIN_MAX_DELAY)
        except Exception as e:  # a hiccup of the DHT process must not end the watch
            log.warning("peer watch failed: %r", e)


async def replace_stack(swarm: Swarm) -> None:
    """Stop what is left of the old DHT process and its daemon, then open a new stack until one starts."""
    old_dht, old_p2p = swarm.dht, swarm.p2p
    with contextlib.suppress(Exception):
        await asyncio.wait_for(old_p2p.shutdown(), WATCH_SECONDS)
    await asyncio.to_thread(old_dht.shutdown)  # hivemind terminates a DHT process that does not stop
    while True:
        try:
            await swarm.open_stack()
            log.info("the p2p stack is back: peer %s on %s", swarm.dht.peer_id, swarm.visible_maddrs())
            return
        except Exception as e:  # e.g. the port is still held: try again
            log.error("starting a new p2p stack failed: %r", e)
            await asyncio.sleep(WATCH_SECONDS)
