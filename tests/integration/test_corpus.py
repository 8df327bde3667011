"""Corpus builders in four processes at once: one build, one corpus, no half-written files."""

import multiprocessing as mp
from pathlib import Path

from node.data.corpus import load_corpus
from node.data.sources import open_corpus
from tests.support.corpora import documents, files_spec, write_jsonl


def _build_worker(args):
    path, cache = args
    return open_corpus(files_spec(Path(path)), Path(cache)).digest


def test_concurrent_builders(tmp_path):
    path = write_jsonl(tmp_path / "src" / "docs.jsonl", documents(400))
    cache = tmp_path / "cache"
    with mp.get_context("spawn").Pool(4) as pool:
        digests = pool.map(_build_worker, [(str(path), str(cache))] * 4)
    assert len(set(digests)) == 1
    assert load_corpus(cache, digests[0]).num_pages > 100
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert not [p for p in (cache / "building").iterdir() if p.is_dir()]
