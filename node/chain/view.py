"""What the node needs from a chain, and nothing more.

Every part of the node that touches the chain goes through :class:`ChainView`,
so the same code runs against the embedded dev chain (``make demo``, tests) and
against a real Bittensor subnet. Registration and staking are deliberately
absent: on a real chain they are done by the operator with btcli, never by the
node.

Both implementations put their chain calls behind one
:class:`~node.chain.guard.ChainGuard`, so they behave alike when the chain
cannot be reached: reads serve the last good answer, writes are queued and
retried with backoff, and chain failures reach the caller only as
:class:`ChainError`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bittensor.intents import normalize
from bittensor.result import BittensorError

if TYPE_CHECKING:
    from bittensor.sp_core import Keypair

# Largest commitment any ChainView accepts: the Commitments pallet takes at most
# three fields (the runtime's MaxCommitFields) of at most 128 raw bytes each
# (Raw0..Raw128), so whatever works on the dev chain also fits on a real one.
# A wire-encoded PeerBinding is about 215 bytes.
RAW_FIELD_BYTES = 128
MAX_COMMITMENT_FIELDS = 3
MAX_COMMITMENT_BYTES = RAW_FIELD_BYTES * MAX_COMMITMENT_FIELDS


class ChainError(Exception):
    """The chain refused an operation or could not be read."""


class ChainUnavailable(ChainError):
    """The chain could not be reached (connection, timeout, locked or missing
    file): unlike a refusal, the same call may well succeed later."""


def commitment_bytes(data: object) -> bytes:
    """``data`` as bytes, if every ChainView would accept it as a commitment."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChainError(f"commitment must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_COMMITMENT_BYTES:
        raise ChainError(f"commitment is {len(data)} bytes; at most {MAX_COMMITMENT_BYTES} allowed")
    return data


def quantize_weights(uids: list[int], weights: list[float]) -> tuple[list[int], list[int]]:
    """Validate a weight vector and quantize it exactly as the Bittensor SDK
    does (max-upscaled to u16, zeros dropped), so that both chains refuse the
    same vectors before anything is sent."""
    if len(uids) != len(weights):
        raise ChainError(f"{len(uids)} uids but {len(weights)} weights")
    try:
        uids = [operator.index(u) for u in uids]
        weights = [float(w) for w in weights]
    except TypeError as e:
        raise ChainError(f"uids must be integers and weights numbers: {e}") from e
    if len(set(uids)) != len(uids):
        raise ChainError("duplicate uids in weights")
    try:
        out_uids, values = normalize(uids, weights)
    except BittensorError as e:
        raise ChainError(str(e)) from e
    if not out_uids:
        raise ChainError("all weights are zero; nothing to set")
    return out_uids, values


@dataclass(frozen=True)
class Neuron:
    """One registered hotkey of the subnet, as the trust model needs it.

    ``stake`` decides who may sign manifests; ``validator_permit`` decides whose
    on-chain weights count. ``weight`` and ``incentive`` say how much the
    permit holders value this hotkey, which is what a Sybil cannot fake:

    - ``weight``: its share of the permit holders' *current* on-chain weights,
      stake-weighted (:func:`received_weights`); 0..1, summing to 1 over the
      subnet once any permit holder has set weights.
    - ``incentive``: the chain's own verdict, 0..1. On Bittensor it is Yuma
      consensus's output at the subnet's last epoch (clipped, lagging the
      weights by up to a tempo); the dev chain has no epochs and reports
      ``weight``.
    """

    uid: int
    hotkey: str
    stake: float
    validator_permit: bool
    incentive: float = 0.0
    weight: float = 0.0


@dataclass(frozen=True)
class ChainHealth:
    """How the node's link to the chain is doing, for logs and the status page."""

    reachable: bool  # the last chain call got an answer
    failures: int  # consecutive calls that could not reach the chain
    retry_in: float  # seconds until the chain is tried again (0 when reachable)
    last_error: str  # why the last failing call failed ("" when reachable)
    pending_writes: tuple[str, ...]  # writes queued during an outage, retried with backoff


def received_weights(neurons: Iterable[Neuron], weights: Mapping[int, Mapping[int, float]]) -> dict[int, float]:
    """uid -> the stake-weighted share of the permit holders' weights it receives.

    With ``S_v`` the stake of permit holder ``v`` and ``W_v`` its weight row
    normalized to sum 1 (rows from uids without a permit, and entries naming
    unregistered uids, are ignored)::

        weight[u] = sum_v S_v * W_v[u] / sum_v S_v      over permit holders v with a row

    The result sums to 1 over the registered uids, or is all zero while no
    permit holder has set weights. This is Yuma consensus without its
    clipping, bonds and epoch lag: what the weights say right now.
    """
    neurons = list(neurons)
    registered = {n.uid for n in neurons}
    received = dict.fromkeys(registered, 0.0)
    total_stake = 0.0
    for validator in neurons:
        row = {uid: w for uid, w in weights.get(validator.uid, {}).items() if uid in registered and w > 0}
        row_sum = sum(row.values())
        if not validator.validator_permit or validator.stake <= 0 or row_sum <= 0:
            continue
        total_stake += validator.stake
        for uid, w in row.items():
            received[uid] += validator.stake * w / row_sum
    if total_stake > 0:
        received = {uid: value / total_stake for uid, value in received.items()}
    return received


@runtime_checkable
class ChainView(Protocol):
    """Read and write access to one subnet.

    ``keypair`` arguments are ``bittensor.sp_core.Keypair`` hotkeys holding a
    private key: writes are made by, and on behalf of, that hotkey.

    Reads may be answered from the view's last answer while it is younger
    than the view's refresh window for that read
    (:class:`~node.chain.policy.RefreshWindows`); a write through the view
    ends those windows, so a caller always sees its own writes, and other
    processes' writes within a window.

    When the chain cannot be reached, reads return the last answer they got
    (with a logged warning) and raise :class:`ChainUnavailable` only if there
    is none yet; writes are queued and retried later, so they return
    normally. A refusal by the chain (unregistered hotkey, no permit, invalid
    weights) always raises :class:`ChainError`.

    Both implementations also have a ``block_time`` property (seconds per
    block). It is not part of the protocol because on Bittensor it is a chain
    read, and ``isinstance`` checks of a protocol evaluate its properties.
    """

    def block(self) -> int:
        """Current block height; round schedules are derived from it. It only
        moves forward, except on a dev chain whose wall clock is stepped back."""
        ...

    def neurons(self) -> list[Neuron]:
        """All registered neurons, ordered by uid."""
        ...

    def neuron(self, hotkey: str) -> Neuron | None:
        """The neuron registered under ``hotkey``, or None if unregistered."""
        ...

    def set_weights(self, keypair: Keypair, uids: list[int], weights: list[float]) -> None:
        """Replace this validator's weight row.

        Only hotkeys with a validator permit may; anything else raises
        :class:`ChainError`. Weights are relative: they are max-upscaled and
        quantized to u16 as Bittensor does, so only proportions survive. On a
        subnet with commit-reveal enabled the row is committed timelocked and
        ``weights()`` shows it only once the chain has revealed it.
        """
        ...

    def weights(self) -> dict[int, dict[int, float]]:
        """Validator uid -> {uid: weight}, each row normalized to sum 1."""
        ...

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        """Publish up to :data:`MAX_COMMITMENT_BYTES` under this hotkey, replacing the last."""
        ...

    def commitments(self) -> dict[str, bytes]:
        """Registered hotkey -> its latest commitment."""
        ...

    def health(self) -> ChainHealth:
        """The state of the link to the chain; never touches the chain."""
        ...
