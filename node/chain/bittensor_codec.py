"""The bittensor SDK's values as ChainView's, and back: metagraph rows as
neurons, commitment bytes as the Commitments pallet's ``Raw<n>`` fields.
Pure functions, so they are tested without a chain."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from node.chain.view import MAX_COMMITMENT_BYTES, RAW_FIELD_BYTES, Neuron, received_weights


def neurons_from_metagraph(rows: Iterable[Any], weights: dict[int, dict[int, float]]) -> list[Neuron]:
    """ChainView neurons from the SDK's ``MetagraphNeuron`` rows and the
    subnet's weight rows, ordered by uid."""
    neurons = sorted(
        (
            Neuron(
                uid=int(n.uid),
                hotkey=str(n.hotkey),
                stake=float(n.total_stake.amount),
                validator_permit=bool(n.validator_permit),
                incentive=float(n.incentive),
            )
            for n in rows
        ),
        key=lambda n: n.uid,
    )
    received = received_weights(neurons, weights)
    return [Neuron(n.uid, n.hotkey, n.stake, n.validator_permit, n.incentive, received[n.uid]) for n in neurons]


def raw_fields(data: bytes) -> list[dict[str, bytes]]:
    """``data`` as Commitments ``Data`` fields: ``Raw<n>`` chunks of at most 128 bytes."""
    return [{f"Raw{len(chunk)}": chunk} for chunk in (data[i : i + RAW_FIELD_BYTES] for i in range(0, len(data), RAW_FIELD_BYTES))]


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
