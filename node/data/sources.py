"""Which corpus a run spec names, checked against the digest it pins."""

from __future__ import annotations

from pathlib import Path

from node.config import DataSpec
from node.data.build import build_corpus_from_files, build_stdlib_corpus
from node.data.corpus import Corpus, CorpusError

TEXT_SUFFIXES = (".txt", ".md", ".py", ".json", ".jsonl")


def open_corpus(data: DataSpec, cache_dir: Path) -> Corpus:
    """`stdlib` is the default corpus every machine has; any other value is a folder of text files."""
    if data.source == "stdlib":
        corpus = build_stdlib_corpus(cache_dir, data.page_tokens)
    else:
        root = Path(data.path)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise CorpusError(f"no text files ({', '.join(TEXT_SUFFIXES)}) under {root}")
        corpus = build_corpus_from_files(root.name, files, cache_dir, data.page_tokens)
    if data.digest and corpus.digest != data.digest:
        raise CorpusError(
            f"corpus {data.path or data.source!r} builds to digest {corpus.digest[:16]}…, but the run pins {data.digest[:16]}… "
            "(a different Python version or different files?)"
        )
    return corpus
