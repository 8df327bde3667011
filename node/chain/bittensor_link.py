"""The connection of a :class:`~node.chain.bittensor_adapter.BittensorChain`:
the SDK's ``bt.Subtensor`` client, made afresh in a forked child, what its
failures mean, and the :class:`~node.chain.guard.ChainGuard` every call goes
through.

Failures to reach the chain (connection, timeout, or a read that fails for
any reason) are :class:`ChainUnavailable`, retried by the guard with backoff
while the last good answer is served; refusals by the chain are
:class:`ChainError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from node.chain.guard import ChainGuard
from node.chain.policy import RetryPolicy
from node.chain.view import ChainError, ChainHealth, ChainUnavailable

if TYPE_CHECKING:
    import bittensor as bt


class SubtensorLink:
    """One SDK client on ``network`` (calls on subnet ``netuid``), behind a guard
    labelled ``label`` with ``policy`` and the refresh windows ``fresh_for``.
    ``substrate`` replaces the SDK's RPC backend; tests pass an in-memory fake."""

    def __init__(
        self,
        network: str,
        netuid: int,
        *,
        label: str,
        substrate: Any = None,
        policy: RetryPolicy | None = None,
        fresh_for: Mapping[str, float] | None = None,
    ) -> None:
        import bittensor as bt

        self._bt = bt
        self._network = network
        self._netuid = netuid
        self._substrate = substrate
        self._subtensor = self._new_subtensor()
        self._connect_lock = threading.Lock()
        self._block_lock = threading.Lock()
        self._highest_block = 0
        # Clients whose loop thread did not survive a fork; see _forked.
        self._left_behind: list[bt.Subtensor] = []
        self._guard = ChainGuard(label, policy, fresh_for=fresh_for, after_fork=self._forked)

    def read(self, what: str, fetch: Callable[[bt.Subtensor], Any]) -> Any:
        """``fetch(sdk)`` through the guard. A read that fails in any way is an
        outage, served from the last answer: the chain's answers are untrusted
        input, and one the SDK cannot decode (say, mid runtime upgrade) must
        not take the node down. A missing subnet is a definitive answer."""

        def guarded() -> Any:
            try:
                return fetch(self._sdk())
            except ChainError:
                raise
            except Exception as e:
                raise ChainUnavailable(f"could not read {what}: {type(e).__name__}: {e}") from e

        return self._guard.read(what, guarded)

    def block(self) -> int:
        """The head block number, never lower than before: a fallback endpoint may lag by a block."""
        block = self.read("block height", lambda sdk: int(sdk.block))
        with self._block_lock:
            self._highest_block = max(self._highest_block, block)
            return self._highest_block

    def write(self, what: str, submit: Callable[[], None]) -> None:
        """``submit()`` (which sends through :meth:`submit`) through the guard: now, or queued."""
        self._guard.write(what, submit)

    def submit(self, what: str, send: Callable[[bt.Subtensor], Any]) -> Any:
        """Run a write; its ExtrinsicResult if the chain accepted it."""
        try:
            result = send(self._sdk())
        except ChainError:
            raise
        except Exception as e:
            kind = ChainUnavailable if self._unreachable(e) else ChainError
            raise kind(f"could not {what} on {self._network} netuid {self._netuid}: {e}") from e
        if not result.success:
            raise ChainError(f"the chain refused to {what} on {self._network} netuid {self._netuid}: {result.message}")
        return result

    def health(self) -> ChainHealth:
        return self._guard.health()

    def _unreachable(self, error: BaseException | None) -> bool:
        """Whether ``error``, or what it was explicitly raised from, means the
        chain was not reached (the SDK wraps a dropped connection during a
        submission in its ChainError, ``from`` the connection error)."""
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if isinstance(error, (self._bt.RpcConnectionError, self._bt.ConnectionNotReady, OSError, TimeoutError)):
                return True
            error = error.__cause__
        return False

    def _sdk(self) -> bt.Subtensor:
        """The connected client. Connecting is serialized: two threads making
        the first call at once would otherwise each open a connection."""
        with self._connect_lock:
            self._subtensor.connect()
        return self._subtensor

    def _new_subtensor(self) -> bt.Subtensor:
        try:
            return self._bt.Subtensor(network=self._network, substrate=self._substrate)
        except ValueError as e:  # an unknown network name
            raise ChainError(str(e)) from e

    def _forked(self) -> None:
        """In a forked child: the client's event-loop thread stayed in the
        parent, so start a fresh client. The old one is kept, not garbage
        collected: its finalizer would wait out a close on the dead loop."""
        self._left_behind.append(self._subtensor)
        self._subtensor = self._new_subtensor()
        self._connect_lock = threading.Lock()
        self._block_lock = threading.Lock()
