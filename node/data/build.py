"""Building a corpus: documents tokenized in batches into shards, once per machine, with a progress bar.

Building is separate from reading (node/data/corpus.py) because only the first
node on a machine builds: a file lock makes the others wait, and an index
maps the build's inputs (its key) to the corpus digest, so the next start
finds the corpus without reading the source again.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from node.data.corpus import DEFAULT_PAGE_TOKENS, DEFAULT_SHARD_PAGES, Corpus, CorpusError, canonical_json, load_corpus
from node.data.shards import ShardWriter
from node.data.tokenizer import BYTE, TextTokenizer, load_tokenizer
from node.fsutil import atomic_write

INDEX_DIR = "index"
BUILD_DIR = "building"
BATCH_DOCUMENTS = 512


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _indexed(cache_dir: Path, key: str) -> Corpus | None:
    entry = cache_dir / INDEX_DIR / f"{key}.json"
    if not entry.is_file():
        return None
    try:
        return load_corpus(cache_dir, json.loads(entry.read_bytes())["digest"])
    except (CorpusError, ValueError, KeyError, TypeError):
        return None  # stale or damaged index entry, or the corpus was removed: build again


def build_corpus(
    name: str,
    documents: Iterable[str],
    tokenizer: TextTokenizer,
    cache_dir: Path | str,
    key: str,
    page_tokens: int = DEFAULT_PAGE_TOKENS,
    shard_pages: int = DEFAULT_SHARD_PAGES,
) -> Corpus:
    """The corpus of ``documents`` under ``tokenizer``; ``key`` names the inputs (source, tokenizer, page size).

    An interrupted build resumes at the last whole shard, skipping the documents
    it had already consumed (so ``documents`` must come in the same order).
    """
    if type(page_tokens) is not int or page_tokens < 2 or type(shard_pages) is not int or shard_pages < 1:
        raise ValueError("page_tokens must be an int of at least 2, shard_pages a positive int")
    cache_dir = Path(cache_dir)
    if (corpus := _indexed(cache_dir, key)) is not None:
        return corpus
    with _locked(cache_dir / BUILD_DIR / f"{key}.lock"):
        if (corpus := _indexed(cache_dir, key)) is not None:
            return corpus  # another process built it while this one waited
        writer = ShardWriter(cache_dir / BUILD_DIR / key, tokenizer.dtype, page_tokens, shard_pages)
        remaining = itertools.islice(iter(documents), writer.documents, None)
        with tqdm(desc=f"tokenizing {name}", unit=" docs", initial=writer.documents, disable=None) as bar:
            while batch := list(itertools.islice(remaining, BATCH_DOCUMENTS)):
                writer.add(tokenizer.encode_documents(batch))
                bar.update(len(batch))
                bar.set_postfix(tokens=f"{writer.tokens:,}")
        manifest = writer.finish(name, tokenizer.digest, cache_dir)
        atomic_write(cache_dir / INDEX_DIR / f"{key}.json", canonical_json({"digest": manifest.digest}))
        return load_corpus(cache_dir, manifest.digest)


def build_corpus_from_text(name: str, text: str, cache_dir: Path | str, page_tokens: int = DEFAULT_PAGE_TOKENS) -> Corpus:
    """A byte-level corpus of one document: for tests and benchmarks."""
    key = hashlib.sha256(canonical_json({"name": name, "page_tokens": page_tokens, "text": text})).hexdigest()
    return build_corpus(name, [text], load_tokenizer(BYTE), cache_dir, key, page_tokens)
