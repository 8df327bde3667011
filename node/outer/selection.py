"""Who goes into a round's manifest: on-chain standing combined with this validator's own verdicts.

On-chain weight and incentive are what the permit holders, by stake, agreed a
hotkey's work is worth; a Sybil cannot fake them, and one validator's local
view cannot override them alone. Local verdicts still count: a hotkey this
validator caught cheating (banned) is never chosen, and its pass rate moves
hotkeys up or down. Hotkeys with neither on-chain standing nor a local verdict
are newcomers: they compete only for a few probation slots, so a flood of
fresh registrations cannot crowd out proven contributors, yet newcomers can
earn standing.

The same rank sets each chosen contribution's aggregation weight,
0.5 + 0.5 * rank (newcomers 0.5): proven work counts up to twice as much as
unproven work, and no more, so neither a validator's favourites nor a burst
of standing can drown the rest (the protocol refuses weights outside
[0.5, 1]). The weights are written into the signed manifest, so every node
averages exactly what it names (node/outer/aggregate.robust_mean) and
reproduces the result bit for bit.
"""

from __future__ import annotations

from node.chain import Neuron
from node.verifier.scores import Scoreboard
from protocol.messages import MIN_ENTRY_WEIGHT


def chain_standing(neuron: Neuron) -> float:
    """The chain's view of a hotkey, 0..1: the larger of its current weight share and its incentive."""
    return max(neuron.weight, neuron.incentive, 0.0)


def standing_ranks(scores: Scoreboard, candidates: dict[str, Neuron]) -> dict[str, float | None]:
    """Each candidate's rank in 0..1, None for newcomers (neither on-chain standing nor a local verdict).

    `rank = mean of the terms present`: chain standing normalized by the best
    among the candidates, and this validator's local pass rate.
    """
    best_standing = max((chain_standing(n) for n in candidates.values()), default=0.0)
    ranks: dict[str, float | None] = {}
    for hotkey, neuron in candidates.items():
        terms = []
        if best_standing > 0 and chain_standing(neuron) > 0:
            terms.append(chain_standing(neuron) / best_standing)
        if scores.known(hotkey):
            terms.append(scores.score(hotkey))
        ranks[hotkey] = sum(terms) / len(terms) if terms else None
    return ranks


def select_contributions(
    scores: Scoreboard, candidates: dict[str, Neuron], round_: int, gather_size: int, probation_slots: int
) -> dict[str, float]:
    """The hotkeys to aggregate with their weights, ordered by stake (then hotkey) as the manifest lists them.

    Established hotkeys are ranked (ties go to stake, then hotkey) and fill the
    gather set; newcomers share the probation slots.
    """
    allowed = {h: n for h, n in candidates.items() if not scores.banned(h, round_)}
    ranks = standing_ranks(scores, allowed)
    established = [h for h in allowed if ranks[h] is not None]
    newcomers = [h for h in allowed if ranks[h] is None]
    established.sort(key=lambda h: (-ranks[h], -allowed[h].stake, h))  # type: ignore[operator]
    newcomers.sort(key=lambda h: (-allowed[h].stake, h))
    chosen = established[:gather_size]
    chosen += newcomers[: max(0, min(probation_slots, gather_size - len(chosen)))]
    return {h: entry_weight(ranks[h]) for h in sorted(chosen, key=lambda h: (-allowed[h].stake, h))}


def entry_weight(rank: float | None) -> float:
    """0.5 for newcomers up to 1.0 for the best ranked, rounded so that the manifest states it exactly."""
    return round(MIN_ENTRY_WEIGHT + (1.0 - MIN_ENTRY_WEIGHT) * (rank or 0.0), 4)
