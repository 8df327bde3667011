import hashlib
import json
import os
import time

import numpy as np
import pytest

from node.data.build import build_corpus_from_files, build_stdlib_corpus, stdlib_files
from node.data.corpus import (
    FILE_SEPARATOR,
    Corpus,
    CorpusError,
    CorpusIntegrityError,
    CorpusManifest,
    CorpusNotFoundError,
    load_corpus,
)
from tests.support.corpora import write_files

PT = 64


def _contents(seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in (300, 1000, 77)]


def test_pages_manifest_and_digests(tmp_path):
    contents = _contents()
    files = write_files(tmp_path / "src", contents)
    corpus = build_corpus_from_files("t", files, tmp_path / "cache", page_tokens=PT)
    stream = b"".join(c + FILE_SEPARATOR for c in contents)
    assert corpus.num_pages == len(stream) // PT
    m = corpus.manifest
    assert (m.name, m.page_tokens, m.num_pages) == ("t", PT, len(stream) // PT)
    for i in range(corpus.num_pages):
        page = corpus.page(i)
        assert page.dtype == np.uint8 and page.shape == (PT,)
        assert page.tobytes() == stream[i * PT : (i + 1) * PT]
        assert corpus.page_digest(i) == hashlib.sha256(stream[i * PT : (i + 1) * PT]).digest()
        assert corpus.verify_page(i, page.copy())
    assert not corpus.verify_page(0, corpus.page(1))
    root = hashlib.sha256(b"".join(corpus.page_digest(i) for i in range(corpus.num_pages))).hexdigest()
    assert m.page_digests_root == root
    assert m.digest == CorpusManifest.compute_digest("t", PT, m.num_pages, root)
    with pytest.raises(IndexError):
        corpus.page(corpus.num_pages)
    with pytest.raises(IndexError):
        corpus.page(-1)
    # pages are read-only views
    with pytest.raises((ValueError, TypeError)):
        corpus.page(0)[0] = 1
    # on-disk layout
    folder = tmp_path / "cache" / m.digest
    assert (folder / "tokens.bin").stat().st_size == m.num_pages * PT
    assert json.loads((folder / "manifest.json").read_text())["digest"] == m.digest
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_digest_stable_and_content_sensitive(tmp_path):
    files = write_files(tmp_path / "a", _contents(0))
    d1 = build_corpus_from_files("t", files, tmp_path / "c1", page_tokens=PT).manifest.digest
    d2 = build_corpus_from_files("t", files, tmp_path / "c2", page_tokens=PT).manifest.digest
    # same content elsewhere on disk -> same digest
    d3 = build_corpus_from_files("t", write_files(tmp_path / "b", _contents(0)), tmp_path / "c3", PT).manifest.digest
    assert d1 == d2 == d3
    other = build_corpus_from_files("t", write_files(tmp_path / "x", _contents(1)), tmp_path / "c1", PT)
    assert other.manifest.digest != d1
    assert build_corpus_from_files("u", files, tmp_path / "c1", PT).manifest.digest != d1
    assert build_corpus_from_files("t", files, tmp_path / "c1", PT * 2).manifest.digest != d1
    # both corpora live side by side in one cache
    assert load_corpus(tmp_path / "c1", d1).manifest.digest == d1
    assert load_corpus(tmp_path / "c1", other.manifest.digest).manifest.digest == other.manifest.digest


def test_cache_reuse(tmp_path, monkeypatch):
    files = write_files(tmp_path / "src", _contents())
    cache = tmp_path / "cache"
    c1 = build_corpus_from_files("t", files, cache, page_tokens=PT)
    tokens = cache / c1.manifest.digest / "tokens.bin"
    mtime = tokens.stat().st_mtime_ns
    import node.data.build as mod

    def boom(*a, **k):
        raise AssertionError("files re-read although the cache is valid")

    monkeypatch.setattr(mod, "_read_files", boom)
    c2 = build_corpus_from_files("t", files, cache, page_tokens=PT)
    assert c2.manifest == c1.manifest
    assert tokens.stat().st_mtime_ns == mtime
    monkeypatch.undo()
    # a changed input file is noticed (index is keyed by size + mtime)
    files[0].write_bytes(b"changed" * 50)
    c3 = build_corpus_from_files("t", files, cache, page_tokens=PT)
    assert c3.manifest.digest != c1.manifest.digest


def test_load_unknown_digest(tmp_path):
    files = write_files(tmp_path / "src", _contents())
    corpus = build_corpus_from_files("t", files, tmp_path / "cache", page_tokens=PT)
    wrong = hashlib.sha256(b"nope").hexdigest()
    with pytest.raises(CorpusNotFoundError, match="unknown corpus digest"):
        load_corpus(tmp_path / "cache", wrong)
    with pytest.raises(CorpusNotFoundError):
        load_corpus(tmp_path / "cache", "../" + corpus.manifest.digest)
    with pytest.raises(CorpusNotFoundError):
        load_corpus(tmp_path / "cache", corpus.manifest.digest + "\n")
    with pytest.raises(CorpusNotFoundError):
        load_corpus(tmp_path / "empty", corpus.manifest.digest)
    assert issubclass(CorpusNotFoundError, CorpusError)


def test_tampering_detected(tmp_path):
    files = write_files(tmp_path / "src", _contents())
    cache = tmp_path / "cache"
    corpus = build_corpus_from_files("t", files, cache, page_tokens=PT)
    digest = corpus.manifest.digest
    del corpus
    folder = cache / digest
    tokens = folder / "tokens.bin"
    good = tokens.read_bytes()

    # one flipped byte
    bad = bytearray(good)
    bad[PT + 3] ^= 0x01
    tokens.write_bytes(bytes(bad))
    with pytest.raises(CorpusIntegrityError, match="does not match"):
        load_corpus(cache, digest)
    # a rebuild repairs the damaged cache entry
    repaired = build_corpus_from_files("t", files, cache, page_tokens=PT)
    assert repaired.manifest.digest == digest and tokens.read_bytes() == good

    # truncated file
    tokens.write_bytes(good[:-1])
    with pytest.raises(CorpusIntegrityError):
        load_corpus(cache, digest)
    tokens.unlink()
    with pytest.raises(CorpusIntegrityError):
        load_corpus(cache, digest)
    tokens.write_bytes(good)
    load_corpus(cache, digest)

    # a manifest whose fields do not match its digest
    mpath = folder / "manifest.json"
    m = json.loads(mpath.read_text())
    m["num_pages"] -= 1
    mpath.write_text(json.dumps(m))
    with pytest.raises(CorpusIntegrityError):
        load_corpus(cache, digest)


def test_too_small_corpus(tmp_path):
    files = write_files(tmp_path / "src", [b"abc"])
    with pytest.raises(ValueError, match="fewer than one page"):
        build_corpus_from_files("t", files, tmp_path / "cache", page_tokens=PT)


def test_stdlib_corpus(tmp_path):
    files = stdlib_files()
    rel = [f.as_posix() for f in files]
    assert rel == sorted(rel)
    assert not any("site-packages" in r or "__pycache__" in r for r in rel)
    t0 = time.perf_counter()
    corpus = build_stdlib_corpus(tmp_path)
    assert time.perf_counter() - t0 < 20
    assert isinstance(corpus, Corpus)
    assert corpus.num_pages > 1000 and corpus.manifest.page_tokens == 4096
    t0 = time.perf_counter()
    again = build_stdlib_corpus(tmp_path)
    loaded = load_corpus(tmp_path, corpus.manifest.digest)
    assert time.perf_counter() - t0 < 2.0
    assert again.manifest == corpus.manifest == loaded.manifest
    assert np.array_equal(loaded.page(corpus.num_pages - 1), corpus.page(corpus.num_pages - 1))
    # byte-level text of Python source
    assert b"def " in b"".join(corpus.page(i).tobytes() for i in range(10))
    assert os.path.isdir(tmp_path / corpus.manifest.digest)
