"""Corpus builders in four processes at once: one corpus, no half-written files."""

import multiprocessing as mp
from pathlib import Path

import numpy as np

from node.data.build import build_corpus_from_files
from node.data.corpus import FILE_SEPARATOR, load_corpus
from tests.support.corpora import write_files

PT = 64


def _build_worker(args):
    files, cache = args
    return build_corpus_from_files("t", [Path(f) for f in files], Path(cache), PT).manifest.digest


def test_concurrent_builders(tmp_path):
    rng = np.random.default_rng(5)
    files = write_files(tmp_path / "src", [bytes(rng.integers(0, 256, 200_000, dtype=np.uint8)) for _ in range(5)])
    cache = tmp_path / "cache"
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        digests = pool.map(_build_worker, [([str(f) for f in files], str(cache))] * 4)
    assert len(set(digests)) == 1
    corpus = load_corpus(cache, digests[0])
    assert corpus.num_pages == (5 * (200_000 + len(FILE_SEPARATOR))) // PT
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
