"""Who may sign a round's manifest, when, and which manifest counts.

Every honest node must compute this alike, from the chain's neurons alone:
permitted validators ranked by stake (ties by uid), the first
MAX_VALIDATOR_SLOTS of them. Rank 0 signs at the start of the manifest window;
rank i only in its own later slot, so a backup speaks only when the ones above
it were silent. Where several manifests exist, the one of the best-ranked
signer wins, so every node applies the same one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from protocol.messages import RoundManifest
from protocol.schedule import RoundSchedule

MAX_VALIDATOR_SLOTS = 4  # more backups add little and widen the window a manifest may be late by


class Staked(Protocol):
    """What the election reads of a neuron (node.chain.Neuron has it)."""

    @property
    def uid(self) -> int: ...
    @property
    def hotkey(self) -> str: ...
    @property
    def stake(self) -> float: ...
    @property
    def validator_permit(self) -> bool: ...


S = TypeVar("S", bound=Staked)


def manifest_signers(neurons: Iterable[S]) -> list[S]:
    """Permitted validators by stake rank: rank 0 signs first, the rest are backups."""
    permitted = [n for n in neurons if n.validator_permit]
    return sorted(permitted, key=lambda n: (-n.stake, n.uid))[:MAX_VALIDATOR_SLOTS]


def signer_rank(signers: Sequence[Staked], hotkey: str) -> int | None:
    """`hotkey`'s place among the manifest signers, or None when it may not sign."""
    return next((i for i, n in enumerate(signers) if n.hotkey == hotkey), None)


def signing_time(schedule: RoundSchedule, round_: int, rank: int, signers: int) -> float:
    """The earliest moment the signer of `rank` may sign round `round_`'s manifest."""
    return schedule.manifest_slot(round_, rank, signers)


def best_manifest(manifests: Iterable[RoundManifest], round_: int, signers: Sequence[Staked]) -> RoundManifest | None:
    """The manifest every node applies: for this round, by the best-ranked permitted signer."""
    ranks = {n.hotkey: i for i, n in enumerate(signers)}
    valid = [m for m in manifests if m.round == round_ and m.hotkey in ranks]
    return min(valid, key=lambda m: ranks[m.hotkey], default=None)
