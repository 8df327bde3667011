"""Building corpora: bytes, files or the running Python's standard library, cut into cached pages.

Building is separate from reading (node/data/corpus.py) because only the
first node on a machine builds; every other read just checks the digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from pathlib import Path

from node.data.corpus import (
    DEFAULT_PAGE_TOKENS,
    FILE_SEPARATOR,
    INDEX_DIR,
    MANIFEST_FILE,
    STDLIB_CORPUS_NAME,
    TOKENS_FILE,
    Corpus,
    CorpusError,
    CorpusIntegrityError,
    CorpusManifest,
    CorpusNotFoundError,
    _canonical_json,
    _page_digests,
    encode_bytes,
    load_corpus,
    page_digests_root,
)
from node.fsutil import atomic_write


def build_corpus_from_bytes(name: str, data: bytes, cache_dir: Path | str, page_tokens: int = DEFAULT_PAGE_TOKENS) -> Corpus:
    """Cut ``data`` (already tokenized: one byte per token) into pages and cache it."""
    if not isinstance(name, str) or not name:
        raise ValueError("corpus name must be a non-empty string")
    if type(page_tokens) is not int or page_tokens <= 0:
        raise ValueError(f"page_tokens must be a positive int, got {page_tokens!r}")
    num_pages = len(data) // page_tokens
    if num_pages == 0:
        raise ValueError(f"corpus {name!r} has {len(data)} tokens, fewer than one page of {page_tokens}")
    tokens = encode_bytes(data)[: num_pages * page_tokens]
    digests = _page_digests(tokens, page_tokens, num_pages)
    manifest = CorpusManifest.create(name, page_tokens, num_pages, page_digests_root(digests))

    cache_dir = Path(cache_dir)
    folder = cache_dir / manifest.digest
    try:
        return load_corpus(cache_dir, manifest.digest)
    except CorpusNotFoundError:
        pass
    except CorpusIntegrityError:
        pass  # damaged cache entry: rewrite it below
    folder.mkdir(parents=True, exist_ok=True)
    # Concurrent builders write identical bytes; each replace is atomic, and the
    # manifest goes last, so a manifest's presence means tokens.bin is complete.
    atomic_write(folder / TOKENS_FILE, memoryview(tokens).cast("B"))
    atomic_write(folder / MANIFEST_FILE, manifest.to_json_bytes())
    return load_corpus(cache_dir, manifest.digest)


def _read_files(files: list[Path]) -> bytes:
    parts: list[bytes] = []
    for f in files:
        parts.append(Path(f).read_bytes())
        parts.append(FILE_SEPARATOR)
    return b"".join(parts)


def _fingerprint(name: str, page_tokens: int, files: list[Path]) -> str:
    """Cheap key for the inputs of a build: paths, sizes and mtimes of the files."""
    entries = []
    for f in files:
        st = os.stat(f)
        entries.append([os.fspath(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    body = {"v": 1, "name": name, "page_tokens": page_tokens, "sep": FILE_SEPARATOR.hex(), "files": entries}
    return hashlib.sha256(_canonical_json(body)).hexdigest()


def build_corpus_from_files(name: str, files: list[Path], cache_dir: Path | str, page_tokens: int = DEFAULT_PAGE_TOKENS) -> Corpus:
    """Corpus of the given files' bytes, in the given order, each followed by FILE_SEPARATOR.

    The corpus digest depends only on the name, page size and content.  A
    small index keyed by (paths, sizes, mtimes) lets a repeated call reuse the
    cached corpus without re-reading the files.
    """
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("build_corpus_from_files needs at least one file")
    cache_dir = Path(cache_dir)
    key = _fingerprint(name, page_tokens, files)
    index_path = cache_dir / INDEX_DIR / f"{key}.json"
    if index_path.is_file():
        try:
            digest = json.loads(index_path.read_bytes())["digest"]
            corpus = load_corpus(cache_dir, digest)
            if corpus.manifest.name == name and corpus.manifest.page_tokens == page_tokens:
                return corpus
        except (CorpusError, ValueError, KeyError, TypeError):
            pass  # stale or damaged index entry: rebuild
    corpus = build_corpus_from_bytes(name, _read_files(files), cache_dir, page_tokens)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(index_path, _canonical_json({"digest": corpus.manifest.digest}))
    return corpus


def stdlib_files(stdlib_dir: Path | str | None = None) -> list[Path]:
    """The running Python's standard library ``.py`` files, sorted by relative path."""
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    rels: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
        for fn in filenames:
            if fn.endswith(".py"):
                p = Path(dirpath) / fn
                if p.is_file():
                    rels.append(p.relative_to(root).as_posix())
    return [root / r for r in sorted(rels)]


def build_stdlib_corpus(cache_dir: Path | str, page_tokens: int = DEFAULT_PAGE_TOKENS) -> Corpus:
    """The default corpus: the running Python's standard library source (~30 MB)."""
    files = stdlib_files()
    if not files:
        raise CorpusError(f"no .py files found under {sysconfig.get_paths()['stdlib']}")
    return build_corpus_from_files(STDLIB_CORPUS_NAME, files, cache_dir, page_tokens)
