"""Which data pages a hotkey trains on in a round, and which pages nobody trains on.

Everything derives from sha256 over length-prefixed parts, so any implementation
in any language reproduces the same pages from (run_id, round, hotkey). No
`random` module: its algorithms are not a protocol.
"""

from __future__ import annotations

import hashlib

# The label of the seed of a trainer's batch draws: every honest node derives it alike,
# so a verifier can recompute a trainer's batch order.
TRAIN_SEED = "train-seed"


def derive(*parts: bytes | str | int) -> bytes:
    """sha256 over unambiguous, length-prefixed parts."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, int):
            raw = part.to_bytes(8, "little", signed=False)
        elif isinstance(part, str):
            raw = part.encode("utf-8")
        else:
            raw = bytes(part)
        h.update(len(raw).to_bytes(4, "little"))
        h.update(raw)
    return h.digest()


def _draw(seed: bytes, counter: int, modulus: int) -> int:
    # 64-bit draws keep the modulo bias below 2^-40 for any realistic corpus.
    return int.from_bytes(derive(seed, counter)[:8], "little") % modulus


def eval_pages(run_id: bytes, num_pages: int, count: int) -> list[int]:
    """The held-out pages: the `count` pages with the smallest run-seeded hash."""
    if not 0 < count < num_pages:
        raise ValueError(f"eval page count must be in (0, {num_pages})")
    ranked = sorted(range(num_pages), key=lambda i: derive(run_id, "eval-page", i))
    return sorted(ranked[:count])


def assign_pages(run_id: bytes, round_: int, hotkey: str, num_pages: int, count: int, excluded: frozenset[int]) -> list[int]:
    """`count` distinct training pages for `hotkey` in `round_`, never from `excluded`."""
    available = num_pages - len(excluded)
    if not 0 < count <= available:
        raise ValueError(f"cannot assign {count} pages from {available} available")
    seed = derive(run_id, "train-pages", round_, hotkey)
    chosen: list[int] = []
    seen: set[int] = set()
    counter = 0
    while len(chosen) < count:
        page = _draw(seed, counter, num_pages)
        counter += 1
        if page not in excluded and page not in seen:
            seen.add(page)
            chosen.append(page)
    return chosen


def verification_targets(run_id: bytes, round_: int, verifier: str, beacon: bytes, candidates: list[str], count: int) -> list[str]:
    """Which contributions `verifier` work-checks in `round_`: a draw others can reproduce, seeded by
    the round's `beacon` (its manifest digest), which nobody knew while training, so a node cannot
    cheat only in the rounds nobody will check it."""
    others = sorted(set(candidates) - {verifier})
    return sorted(others, key=lambda hotkey: derive(run_id, "verify-target", round_, verifier, beacon, hotkey))[:count]


def control_pages(
    run_id: bytes, round_: int, verifier: str, beacon: bytes, count: int, num_pages: int, excluded: frozenset[int]
) -> list[int]:
    """`count` pages outside `excluded` (nobody trained on them this round): the yardstick a
    verifier holds every contribution of the round against, so their gradients are computed once."""
    if num_pages - len(excluded) < count:
        raise ValueError("not enough unassigned pages for control pages")
    seed = derive(run_id, "control-pages", round_, verifier, beacon)
    control: list[int] = []
    counter = 0
    while len(control) < count:
        page = _draw(seed, counter, num_pages)
        counter += 1
        if page not in excluded and page not in control:
            control.append(page)
    return control


def pick(run_id: bytes, label: str, round_: int, verifier: str, beacon: bytes, subject: str, index: int, choices: int) -> int:
    """A seeded choice in range(choices), for the windows a check reads (which trained window of a
    page, which rows of the first batch, where a control window starts)."""
    return _draw(derive(run_id, label, round_, verifier, beacon, subject, index), 0, choices)


def train_seed(run_id: bytes, round_: int, hotkey: str) -> int:
    """The seed of `hotkey`'s inner-loop batch draws in a round."""
    return int.from_bytes(derive(run_id, TRAIN_SEED, round_, hotkey)[:8], "little")
