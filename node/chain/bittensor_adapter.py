"""ChainView on a real Bittensor subnet, through the bittensor 11 SDK.

Mapping (bittensor 11.3):

- ``block``           ``Subtensor.block`` (head block number)
- ``neurons``         ``subnets.metagraph(netuid)``; ``stake`` is the neuron's
                      ``total_stake`` in the subnet's alpha units (the stake the
                      chain ranks validator permits by), ``validator_permit`` as
                      the chain reports it
- ``set_weights``     the SDK's ``SetWeights`` intent, signed by the hotkey: it
                      max-upscales and u16-quantizes, clips to the subnet's
                      max-weight limit, and picks plain or commit-reveal
                      submission from the subnet's settings (so on a
                      commit-reveal subnet ``weights()`` changes only after
                      the reveal)
- ``weights``         ``weights.weights(netuid)``, rows normalized to sum 1
- ``set_commitment``  raw ``Commitments.set_commitment`` call, signed by the
                      hotkey, with the bytes in one ``Raw<n>`` field
- ``commitments``     ``subnets.commitments(netuid)``, registered hotkeys only

Tests run it against an in-memory fake ``substrate`` (the SDK's own seam), so
the SDK's read decoding, weight conforming and signing paths are exercised,
but never a live runtime: in particular the SCALE encoding of the commitment
field (``{"Raw<n>": bytes}``) is unverified. Every SDK or connection failure
surfaces as :class:`ChainError`.

bittensor is imported when a BittensorChain is built, not when this module
is: dev-chain nodes never pay for the network stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from node.chain.view import MAX_COMMITMENT_BYTES, ChainError, Neuron, commitment_bytes

if TYPE_CHECKING:
    from bittensor.sp_core import Keypair


class BittensorChain:
    """One subnet (``netuid``) of a Bittensor network (``finney``, ``test``,
    ``local`` or a ``ws(s)://`` endpoint).

    ``substrate`` replaces the SDK's RPC backend; tests pass an in-memory fake.
    """

    def __init__(self, network: str, netuid: int, *, substrate: Any = None) -> None:
        import bittensor as bt

        self._bt = bt
        self._network = network
        self._netuid = netuid
        self._subtensor = bt.Subtensor(network=network, substrate=substrate)

    def __repr__(self) -> str:
        return f"BittensorChain(network={self._network!r}, netuid={self._netuid})"

    def block(self) -> int:
        with self._sdk_errors("read the block height"):
            return int(self._subtensor.block)

    def neurons(self) -> list[Neuron]:
        with self._sdk_errors("read the metagraph"):
            graph = self._subtensor.subnets.metagraph(self._netuid, commitments=False)
        if graph is None:
            raise ChainError(f"subnet {self._netuid} does not exist on {self._network}")
        return neurons_from_metagraph(graph.neurons)

    def neuron(self, hotkey: str) -> Neuron | None:
        return next((n for n in self.neurons() if n.hotkey == hotkey), None)

    def set_weights(self, keypair: Keypair, uids: list[int], weights: list[float]) -> None:
        if len(uids) != len(weights):
            raise ChainError(f"{len(uids)} uids but {len(weights)} weights")
        with self._sdk_errors("set weights"):
            intent = self._bt.SetWeights(
                netuid=self._netuid, uids=list(uids), weights=list(weights)
            )
            self._subtensor.execute(intent, keypair).raise_for_failure()

    def weights(self) -> dict[int, dict[int, float]]:
        with self._sdk_errors("read weights"):
            rows = self._subtensor.weights.weights(self._netuid)
        return {
            int(validator): {int(uid): float(w) for uid, w in row.items()}
            for validator, row in rows.items()
        }

    def set_commitment(self, keypair: Keypair, data: bytes) -> None:
        data = commitment_bytes(data)
        fields = [{f"Raw{len(data)}": data}] if data else []
        call = self._bt.calls.Commitments.set_commitment(
            netuid=self._netuid, info={"fields": fields}
        )
        with self._sdk_errors("set a commitment"):
            self._subtensor.submit_call(call, keypair, signer="hotkey").raise_for_failure()

    def commitments(self) -> dict[str, bytes]:
        with self._sdk_errors("read commitments"):
            entries = self._subtensor.subnets.commitments(self._netuid)
        out: dict[str, bytes] = {}
        for hotkey, entry in entries.items():
            # Deregistered hotkeys have no voice; sealed (timelocked) payloads
            # are not something a gradswarm node publishes.
            if entry.uid is None or entry.encrypted:
                continue
            data = raw_commitment_bytes(entry.fields)
            if data is not None:
                out[str(hotkey)] = data
        return out

    @contextmanager
    def _sdk_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (self._bt.BittensorError, OSError) as e:
            where = f"{self._network} netuid {self._netuid}"
            raise ChainError(f"could not {what} on {where}: {e}") from e


def neurons_from_metagraph(rows: Iterable[Any]) -> list[Neuron]:
    """ChainView neurons from the SDK's ``MetagraphNeuron`` rows, ordered by uid."""
    return sorted(
        (
            Neuron(
                uid=int(n.uid),
                hotkey=str(n.hotkey),
                stake=float(n.total_stake.amount),
                validator_permit=bool(n.validator_permit),
            )
            for n in rows
        ),
        key=lambda n: n.uid,
    )


def raw_commitment_bytes(fields: list[Any]) -> bytes | None:
    """The bytes of a commitment's ``Raw*`` fields, or None if it is not one we
    could have written (other field kinds, undecodable or oversized data).

    Commitments are written by anyone registered, so they are parsed as
    untrusted input.
    """
    data = b""
    for entry in fields:
        if not isinstance(entry, dict) or len(entry) != 1:
            return None
        ((variant, value),) = entry.items()
        if not (isinstance(variant, str) and variant.startswith("Raw")):
            return None
        if isinstance(value, str) and value.startswith("0x"):
            try:
                value = bytes.fromhex(value[2:])
            except ValueError:
                return None
        if not isinstance(value, (bytes, bytearray)):
            return None
        data += value
        if len(data) > MAX_COMMITMENT_BYTES:
            return None
    return data
