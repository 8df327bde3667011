"""A client outside the swarm: a state fetched by its hash, and the manifests that may vouch for it.

`gradswarm export` and `gradswarm sample` hold no hotkey and train nothing: they
dial the peers they are given (``--peer``) and the run's bootstrap list, join the
DHT as a client (it stores nothing and serves nothing), and ask every peer they
know of for the state. A node answers on its audit stream, which is open to
anyone (node/audit/serve.py), and on the run's fetch stream, which admits only
peer ids bound to a registered hotkey; both are tried. Nothing received is
trusted: the bytes must parse as a state of the run's model and hash to the
hash asked for, and manifests are decoded and their signatures checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from hivemind.dht.node import DHTNode
from hivemind.p2p import P2P, PeerID
from multiaddr import Multiaddr

from node.audit.serve import STREAM as AUDIT_STREAM
from node.checkpoint.state import StateError, max_state_bytes, parse_state
from node.outer.optimizer import OuterState
from node.swarm import transfer
from node.swarm.records import round_key
from node.swarm.transfer import Progress, TransferError
from protocol import signing, wire
from protocol.messages import AuditRequest, RoundManifest
from protocol.wire import ProtocolError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
ASK_TIMEOUT = 120.0


class NotHeld(Exception):
    """No peer reachable from here served the state asked for (its message says what was tried)."""


@dataclass(frozen=True)
class Fetched:
    state: OuterState
    round: int  # the round the state is θ of, from its safetensors metadata
    peer: str  # who served it


def peer_id_of(maddr: str) -> PeerID:
    try:
        return PeerID.from_base58(Multiaddr(maddr).value_for_protocol("p2p"))
    except Exception as e:
        raise ValueError(f"{maddr!r} is not a multiaddr ending in /p2p/<peer id>: {e}") from None


def state_round(data: bytes) -> int:
    """The round a serialized state names in its metadata (0 when it names none)."""
    import json

    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size]) if 8 + size <= len(data) else {}
    text = str(header.get("__metadata__", {}).get("round", ""))
    return int(text) if text.isdigit() else 0


class Outside:
    """A P2P client and, when a peer lets it join, a client-mode DHT node on the same daemon."""

    def __init__(self, p2p: P2P, dht: DHTNode | None, peers: list[PeerID]):
        self.p2p, self.dht, self.peers = p2p, dht, peers

    @classmethod
    async def connect(cls, maddrs: list[str]) -> Outside:
        """Dial `maddrs`; raises NotHeld when none of them answers."""
        peers = [peer_id_of(m) for m in maddrs]  # a malformed address is the caller's error, not a missing state
        if not maddrs:
            raise NotHeld("no peer to ask: give --peer MADDR or set [node] bootstrap in the run.toml")
        try:
            p2p = await asyncio.wait_for(P2P.create(initial_peers=maddrs, host_maddrs=["/ip4/0.0.0.0/tcp/0"]), CONNECT_TIMEOUT)
        except Exception as e:  # p2pd refuses to start when no initial peer answers
            raise NotHeld(f"none of {len(maddrs)} peers answered ({type(e).__name__}: {e})") from None
        try:
            dht = await DHTNode.create(p2p=p2p, initial_peers=maddrs, client_mode=True, ensure_bootstrap_success=False)
        except Exception as e:  # a peer that is not a DHT node can still serve states
            log.info("could not join the DHT: %r", e)
            dht = None
        return cls(p2p, dht, peers)

    def known_peers(self) -> list[PeerID]:
        """The peers given first, then those the DHT's routing table holds."""
        found = list(self.peers)
        if self.dht is not None:
            found += list(self.dht.protocol.routing_table.peer_id_to_uid)
        return [p for p in dict.fromkeys(found) if p != self.p2p.peer_id]

    async def fetch_state(self, run_id: bytes, state_hash: bytes, numel: int, progress: Progress | None = None) -> Fetched:
        """The state `state_hash` of a model of `numel` values from the first peer that serves it intact."""
        tried: list[str] = []
        for peer in self.known_peers():
            asks: list[tuple[str, Callable]] = [
                ("audit", lambda p=peer: self._ask_audit(p, state_hash, numel, progress)),
                (
                    "fetch",
                    lambda p=peer: transfer.fetch(self.p2p, p, run_id, "state", state_hash, max_state_bytes(numel), ASK_TIMEOUT, progress),
                ),
            ]
            for stream, ask in asks:
                try:
                    data = await ask()
                    state = await asyncio.to_thread(parse_state, data, numel)
                except (TransferError, StateError) as e:
                    tried.append(f"{str(peer)[:12]}… {stream}: {e}")
                    continue
                if state.state_hash() != state_hash:
                    tried.append(f"{str(peer)[:12]}… {stream}: served a state with another hash ({state.state_hash().hex()[:16]})")
                    continue
                return Fetched(state, state_round(data), str(peer))
        detail = "; ".join(tried[-6:]) or "no peer known"
        raise NotHeld(f"no peer served state {state_hash.hex()} ({detail})")

    async def _ask_audit(self, peer: PeerID, state_hash: bytes, numel: int, progress: Progress | None) -> bytes:
        request = AuditRequest(kind="state", first_round=0, last_round=0, digest=state_hash)
        return await transfer.ask(self.p2p, peer, AUDIT_STREAM, request, max_state_bytes(numel), ASK_TIMEOUT, progress)

    async def manifests(self, run_id: bytes, round_: int) -> list[RoundManifest]:
        """The validly signed manifests of `round_` the DHT still holds (none without a DHT)."""
        if self.dht is None or round_ < 0:
            return []
        try:
            found = await self.dht.get(round_key(run_id, "manifest", round_), latest=True)
        except Exception as e:  # an unreachable DHT: the card says no manifest was found
            log.info("manifest lookup failed: %r", e)
            return []
        values = found.value.items() if found is not None and isinstance(found.value, dict) else ()
        manifests = []
        for subkey, item in values:
            try:
                manifest = wire.decode(item.value, RoundManifest)
                signing.verify(manifest, run_id)
            except (ProtocolError, TypeError, ValueError) as e:
                log.info("ignoring a manifest under round %d: %s", round_, e)
                continue
            if manifest.hotkey == subkey:
                manifests.append(manifest)
        return manifests

    async def close(self) -> None:
        if self.dht is not None:
            await self.dht.shutdown()
        await self.p2p.shutdown()
