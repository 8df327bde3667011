"""ChainView on a real Bittensor subnet, through the bittensor SDK's
``bt.Subtensor`` (written against bittensor 11.3).

Mapping:

- ``block``           ``Subtensor.block`` (head block number), never reported
                      lower than before: a fallback endpoint may lag by a block
- ``block_time``      ``Subtensor.block_time()``: the runtime's Aura slot
                      duration, 12 s on finney and testnet, 0.25 s on a
                      fast-blocks localnet
- ``neurons``         ``subnets.metagraph(netuid)``: ``stake`` is the neuron's
                      ``total_stake`` in the subnet's alpha units (the stake the
                      chain ranks validator permits by), ``validator_permit``
                      and ``incentive`` (Yuma consensus, last epoch) as the
                      chain reports them; ``weight`` is
                      :func:`~node.chain.view.received_weights` of the current
                      ``weights()``
- ``set_weights``     the SDK's ``SetWeights`` intent, signed by the hotkey. It
                      reads the subnet's ``CommitRevealWeightsEnabled``
                      hyperparameter and submits the intent the chain requires:
                      ``set_mechanism_weights`` in the clear, or, with
                      commit-reveal on, ``commit_timelocked_mechanism_weights``
                      (the weights drand-timelock encrypted; the chain reveals
                      them itself at the reveal round, so ``weights()`` changes
                      only then). Either way it max-upscales, u16-quantizes and
                      clips to the subnet's max-weight limit, and resubmits
                      twice on transient pool rejections
- ``weights``         ``weights.weights(netuid)``, rows normalized to sum 1
- ``set_commitment``  raw ``Commitments.set_commitment`` call (the SDK has no
                      intent for it), signed by the hotkey, the bytes split over
                      up to three ``Raw<n>`` fields of at most 128 bytes
- ``commitments``     ``subnets.commitments(netuid)``, registered hotkeys only,
                      plaintext ``Raw`` fields only

(The translations of values, both ways, are :mod:`node.chain.bittensor_codec`.)

Every call goes through a :class:`~node.chain.guard.ChainGuard`: failures to
reach the chain (connection, timeout, or a read that fails for any reason)
are :class:`ChainUnavailable` and retried with backoff while the last good
answer is served; refusals by the chain are :class:`ChainError`. The
metagraph, weights and commitments are reused for their refresh windows
(:class:`~node.chain.policy.RefreshWindows`); the block height is always read.
The SDK client, its fork safety, that mapping of failures and the guard are
the adapter's :class:`~node.chain.bittensor_link.SubtensorLink`.

Tests run it against an in-memory fake ``substrate`` (the SDK's own seam,
``bt.Subtensor(..., substrate=...)``), so the SDK's read decoding, weight
conforming, timelock encryption and signing paths are exercised, but never a
live runtime: in particular the SCALE encoding of the commitment fields
(``{"Raw<n>": bytes}``) is unverified.

bittensor's network stack is imported when a BittensorChain is built, not
when this module is: dev-chain nodes never pay for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from node.chain.bittensor_codec import neurons_from_metagraph, raw_commitment_bytes, raw_fields
from node.chain.bittensor_link import SubtensorLink
from node.chain.policy import RefreshWindows, RetryPolicy
from node.chain.view import ChainError, ChainHealth, Neuron, commitment_bytes, quantize_weights

if TYPE_CHECKING:
    import bittensor as bt
    from bittensor.sp_core import Keypair

log = logging.getLogger(__name__)


class BittensorChain:
    """One subnet (``netuid``) of a Bittensor network (``finney``, ``test``,
    ``local`` or a ``ws(s)://`` endpoint).

    ``substrate`` replaces the SDK's RPC backend; tests pass an in-memory fake.
    ``policy`` and ``refresh`` tune retries and reuse of answers; a pickled
    copy gets the defaults, and a cache of its own.
    """

    def __init__(
        self,
        network: str,
        netuid: int,
        *,
        substrate: Any = None,
        policy: RetryPolicy | None = None,
        refresh: RefreshWindows | None = None,
    ) -> None:
        import bittensor as bt

        self._bt = bt
        self._network = network
        self._netuid = netuid
        self._substrate = substrate
        refresh = refresh or RefreshWindows()
        windows = {"metagraph": refresh.neurons, "weights": refresh.weights, "commitments": refresh.commitments}
        self._link = SubtensorLink(network, netuid, label=repr(self), substrate=substrate, policy=policy, fresh_for=windows)

    def __repr__(self) -> str:
        return f"BittensorChain(network={self._network!r}, netuid={self._netuid})"

    def __reduce__(self) -> tuple[type[BittensorChain], tuple[str, int]]:
        if self._substrate is not None:
            raise TypeError("a BittensorChain on an injected substrate cannot be pickled")
        return (BittensorChain, (self._network, self._netuid))

    # ChainView ---------------------------------------------------------------

    @property
    def block_time(self) -> float:
        """Seconds per block: a chain read (the SDK caches it after the first)."""
        return self._link.read("block time", lambda sdk: float(sdk.block_time()))

    def block(self) -> int:
        return self._link.block()

    def neurons(self) -> list[Neuron]:
        return list(self._link.read("metagraph", lambda sdk: _fetch_neurons(sdk, self._network, self._netuid)))

    def neuron(self, hotkey: str) -> Neuron | None:
        return next((n for n in self.neurons() if n.hotkey == hotkey), None)

    def set_weights(self, keypair: Keypair, uids: list[int], weights: list[float]) -> None:
        quantize_weights(uids, weights)  # refuse what the SDK would, before queuing anything
        intent = self._bt.SetWeights(netuid=self._netuid, uids=list(uids), weights=list(weights))

        def submit() -> None:
            result = self._link.submit("set weights", lambda sdk: sdk.execute(intent, keypair, retries=2))
            reveal_round = result.data.get("reveal_round")
            if reveal_round is not None:
                log.info(
                    "%r: weights committed timelocked; the chain reveals them at drand round %s",
                    self,
                    reveal_round,
                )

        self._link.write(f"set weights for {keypair.ss58_address}", submit)

    def weights(self) -> dict[int, dict[int, float]]:
        rows = self._link.read("weights", lambda sdk: _fetch_weights(sdk, self._netuid))
        return {validator: dict(row) for validator, row in rows.items()}

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        call = self._bt.calls.Commitments.set_commitment(netuid=self._netuid, info={"fields": raw_fields(commitment_bytes(data))})
        self._link.write(
            f"set the commitment of {keypair.ss58_address}",
            lambda: self._link.submit("set a commitment", lambda sdk: sdk.submit_call(call, keypair, signer="hotkey")),
        )

    def commitments(self) -> dict[str, bytes]:
        return dict(self._link.read("commitments", lambda sdk: _fetch_commitments(sdk, self._netuid)))

    def health(self) -> ChainHealth:
        return self._link.health()


# Chain reads -----------------------------------------------------------------


def _fetch_neurons(sdk: bt.Subtensor, network: str, netuid: int) -> tuple[Neuron, ...]:
    graph = sdk.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        raise ChainError(f"subnet {netuid} does not exist on {network}")
    return tuple(neurons_from_metagraph(graph.neurons, _fetch_weights(sdk, netuid)))


def _fetch_weights(sdk: bt.Subtensor, netuid: int) -> dict[int, dict[int, float]]:
    rows = sdk.weights.weights(netuid)
    return {int(validator): {int(uid): float(w) for uid, w in row.items()} for validator, row in rows.items()}


def _fetch_commitments(sdk: bt.Subtensor, netuid: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for hotkey, entry in sdk.subnets.commitments(netuid).items():
        # Deregistered hotkeys have no voice; sealed (timelocked) payloads
        # are not something a gradswarm node publishes.
        if entry.uid is None or entry.encrypted:
            continue
        data = raw_commitment_bytes(entry.fields)
        if data is not None:
            out[str(hotkey)] = data
    return out
