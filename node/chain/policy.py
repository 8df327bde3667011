"""The tunables of a ChainView: how it retries (:class:`RetryPolicy`) and how
long it trusts an answer it already has (:class:`RefreshWindows`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff and patience. The defaults suit a 12 s-block chain and a node
    whose event loop must not stall: a metagraph a few seconds old is fine."""

    first_delay: float = 1.0  # seconds the chain is left alone after a first failure
    max_delay: float = 60.0  # the delay doubles per consecutive failure up to this
    stale_wait: float = 2.0  # how long a read waits for a fresh answer when it has an old one
    first_wait: float = 30.0  # how long a read waits when it has nothing to fall back on

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError("need 0 < first_delay <= max_delay")
        if not (self.stale_wait > 0 and self.first_wait > 0):
            raise ValueError("stale_wait and first_wait must be positive")

    def delay(self, failures: int) -> float:
        """Seconds to leave the chain alone after ``failures`` consecutive failures."""
        return min(self.max_delay, self.first_delay * 2 ** (failures - 1))


@dataclass(frozen=True)
class RefreshWindows:
    """Seconds a view answers a read from its last answer without asking the
    chain again, by read kind; a write through the same view ends every window
    at once, so a node always sees its own writes.

    This is the one cache of chain reads in a node: the round logic, the DHT
    record validator (in hivemind's DHT process, on its own copy) and the peer
    bindings all ask the view, as often as they like. The defaults:

    - ``neurons`` 12 s: one Bittensor block, and the metagraph cannot change
      faster than blocks are made; it is also the costliest read (every neuron
      and the weight matrix). A new registration is honoured within a block,
      as the DHT validator always did.
    - ``weights`` 12 s: rows change at most once a block, and validators set
      theirs once a round.
    - ``commitments`` 5 s: a newcomer's peers refuse its streams and pushes
      until they see its committed peer binding, and it commits just once, at
      start-up, so this read is kept the freshest; it is one storage query.

    Reads not named here (the block height) always ask the chain. Tests that
    need other processes' writes seen at once use ``RefreshWindows.uniform(0)``.
    """

    neurons: float = 12.0
    weights: float = 12.0
    commitments: float = 5.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(s) and s >= 0 for s in (self.neurons, self.weights, self.commitments)):
            raise ValueError("refresh windows must be finite and >= 0 seconds")

    @classmethod
    def uniform(cls, seconds: float) -> RefreshWindows:
        """The same window for every read kind (0: every read asks the chain)."""
        return cls(neurons=seconds, weights=seconds, commitments=seconds)
