"""Stand-ins for a corpus: source files for the corpus builder, token pages for the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_files(d: Path, contents: list[bytes]) -> list[Path]:
    """``contents`` as files f0.txt, f1.txt, ... under ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, c in enumerate(contents):
        p = d / f"f{i}.txt"
        p.write_bytes(c)
        paths.append(p)
    return paths


class Pages:
    """The little of a Corpus the trainer reads: pages by index."""

    def __init__(self, n: int = 4, tokens: int = 300):
        rng = np.random.default_rng(0)
        self._pages = [rng.integers(0, 256, tokens).astype(np.uint8) for _ in range(n)]

    def pages(self, ids):
        return [self._pages[i] for i in ids]
