"""Embedded dev chain: a :class:`ChainView` on one sqlite file.

It lets a whole swarm run on one machine with no network and no tokens
(``make demo``, multi-process tests) while enforcing the rules the node relies
on from a real subnet: only registered hotkeys act, only the top stakers hold
validator permits, weights are quantized as Bittensor does, commitments are
size-bounded. Several processes may share the file: every call opens its own
short-lived connection, writes run in ``BEGIN IMMEDIATE`` transactions, and the
file is in WAL mode, so readers never block on writers. The schema, the
queries and the transactions they run in are in :mod:`node.chain.devfile`: a
DevChain is a :class:`~node.chain.devfile.DevFile` with a ChainView on it.

A real subnet computes incentive with Yuma consensus once per epoch; the dev
chain has no epochs and reports, on every read, the stake-weighted share of
the permit holders' weights each neuron receives
(:func:`~node.chain.view.received_weights`)::

    incentive[u] = sum_v S_v * W_v[u] / sum_v S_v

over permit holders ``v`` that have set weights, ``S_v`` their stake and
``W_v`` their row normalized to sum 1: it sums to 1 over the subnet, or is 0
everywhere until a permit holder sets weights.

Its ChainView calls go through a :class:`~node.chain.guard.ChainGuard` like
the Bittensor adapter's: a locked or vanished file ("outage") is retried with
backoff while reads serve the last good answer, and an answer is reused for
its refresh window (:class:`~node.chain.policy.RefreshWindows`) unless this
object wrote, registered or staked since.

A dev chain holds no secrets and trusts every process that can write its file;
it exists to exercise honest and dishonest *nodes*, not to resist an attacker
with local file access.
"""

from __future__ import annotations

import math
import operator
import secrets
import time
from pathlib import Path

from bittensor.sp_core import Keypair

from node.chain import devfile
from node.chain.devfile import DevFile
from node.chain.guard import ChainGuard
from node.chain.policy import RefreshWindows, RetryPolicy
from node.chain.view import ChainError, ChainHealth, Neuron, commitment_bytes, quantize_weights


class DevChain(DevFile):
    """A local subnet in a sqlite file; see the module docstring.

    The object holds only the file's path, the chain's immutable parameters
    and its guard's cache, so it pickles (as its path; a worker process gets
    the default :class:`RetryPolicy` and :class:`RefreshWindows`, and a cache
    of its own) and stays valid after ``fork``.
    """

    def __init__(self, path: str | Path, *, policy: RetryPolicy | None = None, refresh: RefreshWindows | None = None) -> None:
        super().__init__(path)
        refresh = refresh or RefreshWindows()
        windows = {"neurons": refresh.neurons, "weights": refresh.weights, "commitments": refresh.commitments}
        self._guard = ChainGuard(repr(self), policy, fresh_for=windows)

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        block_time: float = 1.0,
        max_validators: int = 64,
        netuid: int = 1,
        genesis_time: float | None = None,
        shared: bool = False,
    ) -> DevChain:
        """Create a fresh chain whose genesis is ``genesis_time`` (unix seconds;
        default now); refuse an existing path (even against a concurrent
        creator: see :func:`devfile.create`)."""
        if genesis_time is None:
            genesis_time = time.time()
        if not (isinstance(genesis_time, (int, float)) and math.isfinite(genesis_time) and genesis_time >= 0):
            raise ValueError(f"genesis_time must be a unix time >= 0, got {genesis_time!r}")
        if not (math.isfinite(block_time) and block_time > 0):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time!r}")
        if operator.index(max_validators) < 1:
            raise ValueError(f"max_validators must be >= 1, got {max_validators!r}")
        if operator.index(netuid) < 0:
            raise ValueError(f"netuid must be >= 0, got {netuid!r}")
        path = Path(path)
        devfile.create(
            path, genesis_time=float(genesis_time), block_time=block_time, max_validators=max_validators, netuid=netuid, shared=shared
        )
        return cls(path)

    # ChainView -------------------------------------------------------------

    def block(self) -> int:
        """Blocks elapsed since genesis by the wall clock (never negative)."""
        return max(0, math.floor((time.time() - self._genesis_time) / self._block_time))

    def neurons(self) -> list[Neuron]:
        return list(self._guard.read("neurons", lambda: self.query(devfile.neurons, self._max_validators)))

    def neuron(self, hotkey: str) -> Neuron | None:
        return next((n for n in self.neurons() if n.hotkey == hotkey), None)

    def set_weights(self, keypair: Keypair, uids: list[int], weights: list[float]) -> None:
        hotkey = _signing_hotkey(keypair)
        uids, values = quantize_weights(uids, weights)
        self._guard.write(
            f"set weights for {hotkey}",
            lambda: self.query(devfile.set_weights, hotkey, uids, values, self._max_validators, write=True),
        )

    def weights(self) -> dict[int, dict[int, float]]:
        rows = self._guard.read("weights", lambda: self.query(devfile.weights))
        return {validator: dict(row) for validator, row in rows.items()}

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        data = commitment_bytes(data)
        hotkey = _signing_hotkey(keypair)
        self._guard.write(f"set the commitment of {hotkey}", lambda: self.query(devfile.set_commitment, hotkey, data, write=True))

    def commitments(self) -> dict[str, bytes]:
        return dict(self._guard.read("commitments", lambda: self.query(devfile.commitments)))

    def health(self) -> ChainHealth:
        return self._guard.health()

    # Dev-only: on a real chain these are done with btcli ----------------------

    def register(self, hotkey: str) -> int:
        """Register ``hotkey`` and return its uid; re-registering returns the same uid.

        Uids are handed out sequentially from 0. Only canonical ss58 (format
        42) sr25519-sized addresses are accepted, so one key cannot hold two
        uids under two spellings.
        """
        check_address(hotkey)
        uid = self.query(devfile.register, hotkey, write=True)
        self._guard.invalidate()
        return uid

    def add_stake(self, hotkey: str, amount: float) -> None:
        """Add ``amount`` to a registered hotkey's stake."""
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ChainError(f"stake amount must be a number, got {type(amount).__name__}")
        if not (math.isfinite(amount) and amount > 0):
            raise ChainError(f"stake amount must be finite and > 0, got {amount!r}")
        self.query(devfile.add_stake, hotkey, float(amount), write=True)
        self._guard.invalidate()


def check_address(hotkey: str) -> None:
    """Refuse anything but a canonical (format 42) ss58 sr25519 address, with ChainError."""
    if not isinstance(hotkey, str):
        raise ChainError(f"hotkey must be an ss58 address string, got {type(hotkey).__name__}")
    try:
        canonical = Keypair(ss58_address=hotkey).ss58_address
    except (ValueError, TypeError) as e:
        raise ChainError(f"malformed hotkey {hotkey!r}: {e}") from e
    if canonical != hotkey:
        raise ChainError(f"hotkey {hotkey!r} is not in Bittensor's ss58 format; use {canonical}")


def _signing_hotkey(keypair: Keypair) -> str:
    """The keypair's address, once it has proved it holds the private key.

    A real chain only accepts extrinsics signed by the hotkey; checking the
    same here catches callers that pass a public-only keypair.
    """
    hotkey = keypair.ss58_address
    challenge = b"gradswarm devchain signer check " + secrets.token_bytes(16)
    try:
        valid = Keypair(ss58_address=hotkey).verify(challenge, keypair.sign(challenge))
    except (ValueError, TypeError) as e:
        raise ChainError(f"keypair {hotkey} cannot sign: {e}") from e
    if not valid:
        raise ChainError(f"keypair {hotkey} does not produce sr25519 signatures for its address")
    return hotkey
