"""Who goes into a round's manifest: on-chain standing combined with this validator's own verdicts.

On-chain weight and incentive are what the permit holders, by stake, agreed a
hotkey's work is worth; a Sybil cannot fake them, and one validator's local
view cannot override them alone. Local verdicts still count: a hotkey this
validator caught cheating (banned) is never chosen, and its pass rate moves
hotkeys up or down. Hotkeys with neither on-chain standing nor a local verdict
are newcomers: they compete only for a few probation slots, so a flood of
fresh registrations cannot crowd out proven contributors, yet newcomers can
earn standing.

Aggregation itself stays unweighted (node/outer/aggregate.robust_mean over the
chosen set): the manifest names exactly what every node averages, and nothing
else, so every node reproduces the result bit for bit.
"""

from __future__ import annotations

from node.chain import Neuron
from node.verifier.scores import Scoreboard


def chain_standing(neuron: Neuron) -> float:
    """The chain's view of a hotkey, 0..1: the larger of its current weight share and its incentive."""
    return max(neuron.weight, neuron.incentive, 0.0)


def select_gather(
    scores: Scoreboard, candidates: dict[str, Neuron], round_: int, gather_size: int, probation_slots: int
) -> list[str]:
    """The hotkeys to aggregate, ordered by stake (then hotkey) as the manifest lists them.

    Established hotkeys (on-chain standing or a local verdict) are ranked by
    `rank = mean of the terms present`: chain standing normalized by the best
    among the candidates, and the local pass rate; ties go to stake, then hotkey.
    """
    allowed = {h: n for h, n in candidates.items() if not scores.banned(h, round_)}
    best_standing = max((chain_standing(n) for n in allowed.values()), default=0.0)

    def rank(hotkey: str) -> float:
        terms = []
        if best_standing > 0 and chain_standing(allowed[hotkey]) > 0:
            terms.append(chain_standing(allowed[hotkey]) / best_standing)
        if scores.known(hotkey):
            terms.append(scores.score(hotkey))
        return sum(terms) / len(terms)

    established = [h for h, n in allowed.items() if chain_standing(n) > 0 or scores.known(h)]
    newcomers = [h for h in allowed if h not in established]
    established.sort(key=lambda h: (-rank(h), -allowed[h].stake, h))
    newcomers.sort(key=lambda h: (-allowed[h].stake, h))
    chosen = established[:gather_size]
    chosen += newcomers[: max(0, min(probation_slots, gather_size - len(chosen)))]
    return sorted(chosen, key=lambda h: (-allowed[h].stake, h))
