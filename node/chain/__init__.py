"""Chain access: the ChainView protocol, the embedded dev chain, and the
Bittensor adapter (imported on first use: only nodes on a real chain need it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.chain.devchain import DevChain
from node.chain.policy import RefreshWindows, RetryPolicy
from node.chain.view import (
    MAX_COMMITMENT_BYTES,
    ChainError,
    ChainHealth,
    ChainUnavailable,
    ChainView,
    Neuron,
    received_weights,
)

if TYPE_CHECKING:
    from node.chain.bittensor_adapter import BittensorChain

__all__ = [
    "MAX_COMMITMENT_BYTES",
    "BittensorChain",
    "ChainError",
    "ChainHealth",
    "ChainUnavailable",
    "ChainView",
    "DevChain",
    "Neuron",
    "RefreshWindows",
    "RetryPolicy",
    "received_weights",
]


def __getattr__(name: str) -> Any:
    if name == "BittensorChain":
        from node.chain.bittensor_adapter import BittensorChain

        return BittensorChain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
