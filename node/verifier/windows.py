"""Which token windows a check reads, derived from public facts only.

- Trained windows: the inner loop's batch order is a function of the trainer's
  public seed (protocol/assignment.train_seed) and its pages, so a verifier
  replays the draws and knows every window the subject trained on. It reads one
  per assigned page, chosen by the round's beacon: the subject could not know
  which while it trained, so training on a few predictable windows does not pass.
- First rows: some rows of the first inner step's batch, whose losses at θ_r
  the subject committed to.
- Control windows: one window of each control page, which nobody trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from node.trainer.inner import draw_windows
from protocol.assignment import pick


@dataclass(frozen=True)
class Draw:
    """Who chooses, so that every choice is a seeded function others can reproduce."""

    run_id: bytes
    round: int
    verifier: str
    beacon: bytes
    subject: str

    def choose(self, label: str, index: int, choices: int) -> int:
        return pick(self.run_id, label, self.round, self.verifier, self.beacon, self.subject, index, choices)


def trained_starts(page_tokens: Sequence[int], seed: int, steps: int, batch_size: int, seq_len: int) -> list[list[int]]:
    """For each page (in assignment order), the start offsets of the windows `steps` inner steps draw."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    starts: list[list[int]] = [[] for _ in page_tokens]
    for _ in range(steps):
        for page, start in draw_windows(page_tokens, batch_size, seq_len, gen):
            starts[page].append(start)
    return starts


def _cut(page: np.ndarray, start: int, seq_len: int) -> np.ndarray:
    return page[start : start + seq_len + 1]


def trained_windows(pages: Sequence[np.ndarray], seed: int, steps: int, batch_size: int, seq_len: int, draw: Draw) -> torch.Tensor:
    """One window the subject trained on from each of its pages it drew at all: [pages, seq_len + 1]."""
    starts = trained_starts([p.shape[0] for p in pages], seed, steps, batch_size, seq_len)
    rows = [
        _cut(page, found[draw.choose("trained-window", i, len(found))], seq_len)
        for i, (page, found) in enumerate(zip(pages, starts, strict=True))
        if found
    ]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def first_rows(
    pages: Sequence[np.ndarray], seed: int, batch_size: int, seq_len: int, count: int, draw: Draw
) -> tuple[list[int], torch.Tensor]:
    """`count` distinct rows of the first batch (their indices, and the windows): [count, seq_len + 1]."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    batch = draw_windows([p.shape[0] for p in pages], batch_size, seq_len, gen)
    order = sorted(range(batch_size), key=lambda row: (draw.choose("first-row", row, 1 << 30), row))[: min(count, batch_size)]
    rows = sorted(order)
    return rows, torch.from_numpy(np.stack([_cut(pages[batch[i][0]], batch[i][1], seq_len) for i in rows]).astype(np.int64))


def control_windows(pages: Sequence[np.ndarray], seq_len: int, draw: Draw) -> torch.Tensor:
    """One window of each control page: [pages, seq_len + 1]."""
    rows = [_cut(page, draw.choose("control-window", i, page.shape[0] - seq_len), seq_len) for i, page in enumerate(pages)]
    return torch.from_numpy(np.stack(rows).astype(np.int64))
