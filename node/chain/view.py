"""What the node needs from a chain, and nothing more.

Every part of the node that touches the chain goes through :class:`ChainView`,
so the same code runs against the embedded dev chain (``make demo``, tests) and
against a real Bittensor subnet. Registration and staking are deliberately
absent: on a real chain they are done by the operator with btcli, never by the
node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bittensor.sp_core import Keypair

# Largest commitment any ChainView accepts: the Commitments pallet's biggest raw
# field (Raw128), so whatever works on the dev chain also fits on a real one.
MAX_COMMITMENT_BYTES = 128


class ChainError(Exception):
    """The chain refused an operation or could not be read."""


def commitment_bytes(data: object) -> bytes:
    """``data`` as bytes, if every ChainView would accept it as a commitment."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChainError(f"commitment must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_COMMITMENT_BYTES:
        raise ChainError(f"commitment is {len(data)} bytes; at most {MAX_COMMITMENT_BYTES} allowed")
    return data


@dataclass(frozen=True)
class Neuron:
    """One registered hotkey of the subnet, as the trust model needs it.

    ``stake`` decides who may sign manifests; ``validator_permit`` decides whose
    on-chain weights count.
    """

    uid: int
    hotkey: str
    stake: float
    validator_permit: bool


@runtime_checkable
class ChainView(Protocol):
    """Read and write access to one subnet.

    ``keypair`` arguments are ``bittensor.sp_core.Keypair`` hotkeys holding a
    private key: writes are made by, and on behalf of, that hotkey.
    """

    def block(self) -> int:
        """Current block height; round schedules are derived from it."""
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
        quantized to u16 as Bittensor does, so only proportions survive.
        """
        ...

    def weights(self) -> dict[int, dict[int, float]]:
        """Validator uid -> {uid: weight}, each row normalized to sum 1."""
        ...

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        """Publish up to :data:`MAX_COMMITMENT_BYTES` under this hotkey, replacing the last."""
        ...

    def commitments(self) -> dict[str, bytes]:
        """Hotkey -> its latest commitment."""
        ...
