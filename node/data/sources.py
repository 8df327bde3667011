"""The documents a run spec's ``[data]`` names, and the corpus they build to, checked against the pinned digest.

Every node builds its pages itself from the source, and the run pins the
result by digest (docs/DESIGN.md §4 says why, rather than pages sent peer to
peer). Local files and Hugging Face datasets are both read with ``datasets``
in streaming mode, in a fixed order: the documents are never all in memory,
and the order, hence the corpus, is the same on every node.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import os
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from node.config import DataSpec, RunSpec
from node.data.build import build_corpus
from node.data.corpus import Corpus, CorpusError, canonical_json
from node.data.tokenizer import TextTokenizer, open_tokenizer

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}
STDLIB_NAME = "python-stdlib"


def stdlib_files(stdlib_dir: Path | str | None = None) -> list[Path]:
    """The running Python's standard library ``.py`` files, sorted by relative path."""
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    rels: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
        rels += [(Path(dirpath) / fn).relative_to(root).as_posix() for fn in filenames if fn.endswith(".py")]
    return [root / r for r in sorted(rels)]


def matched_files(pattern: str) -> list[Path]:
    """The files a ``files`` source's glob names, sorted, all of one format ``datasets`` reads."""
    files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True) if Path(p).is_file())
    if not files:
        raise CorpusError(f"[data] path {pattern!r} matches no files")
    suffixes = {f.suffix for f in files}
    if len(suffixes) > 1 or not suffixes <= set(BUILDERS):
        raise CorpusError(f"[data] path {pattern!r} matches {', '.join(sorted(suffixes))}: want files of one of {', '.join(BUILDERS)}")
    return files


def _stat(files: list[Path]) -> list[list]:
    return [[os.fspath(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _rows(rows: Iterable[dict], where: str) -> Iterator[dict]:
    """The rows, a reader's failure (a malformed line, a truncated file) turned into a clear error."""
    iterator = iter(rows)
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except Exception as e:
            raise CorpusError(f"{where}: cannot read the documents: {type(e).__name__}: {e}") from None
        yield row


def _texts(rows: Iterable[dict], field: str, where: str) -> Iterator[str]:
    for number, row in enumerate(_rows(rows, where)):
        if field not in row:
            raise CorpusError(
                f"{where}: document {number} has no field {field!r} (its fields: {', '.join(sorted(row))}); set [data] text_field"
            )
        text = row[field]
        if not isinstance(text, str):
            raise CorpusError(f"{where}: document {number}'s {field!r} is {type(text).__name__}, not text")
        yield text


def _stdlib_documents(files: list[Path]) -> Iterator[str]:
    for f in files:
        yield f.read_bytes().decode("utf-8", "replace")


def _dataset_texts(data: DataSpec, files: list[Path]) -> Iterator[str]:
    """Opened on the first document only, so that a node whose corpus is cached never reaches the hub."""
    from datasets import load_dataset

    try:
        if files:
            builder = BUILDERS[files[0].suffix]
            options = {"sample_by": "document"} if builder == "text" else {}
            rows = load_dataset(builder, data_files=[str(f) for f in files], split="train", streaming=True, **options)
        else:
            rows = load_dataset(data.path, revision=data.revision or None, split=data.split, streaming=True)
    except Exception as e:  # offline, unknown dataset or split, unreadable files: say which and why
        where = data.path if files else f"the Hugging Face dataset {data.path!r} ({data.split}, {data.revision or 'latest'})"
        raise CorpusError(f"cannot open {where}: {e}") from None
    yield from _texts(rows, data.text_field, data.path)


def documents(spec: RunSpec) -> tuple[str, Iterator[str], dict]:
    """The source's name, its documents in order, and what identifies its content for the build cache."""
    data = spec.data
    if data.source == "stdlib":
        files = stdlib_files()
        name, docs, identity = STDLIB_NAME, _stdlib_documents(files), {"files": _stat(files)}
    elif data.source == "files":
        files = matched_files(data.path)
        if not any(f.stat().st_size for f in files):
            raise CorpusError(f"[data] path {data.path!r}: its files are empty (0 documents)")
        name, docs, identity = Path(data.path).stem.strip("*") or "files", _dataset_texts(data, files), {"files": _stat(files)}
    else:
        name = data.path.rstrip("/").rsplit("/", 1)[-1]
        docs, identity = _dataset_texts(data, []), {"revision": data.revision, "split": data.split}
    if data.max_documents:
        docs = itertools.islice(docs, data.max_documents)
    identity |= {"source": data.source, "path": data.path, "field": data.text_field, "max": data.max_documents}
    return name, docs, identity


def open_corpus(spec: RunSpec, cache_dir: Path, tokenizer: TextTokenizer | None = None) -> Corpus:
    """The run's corpus, built on first use, refused if it differs from the digest the spec pins."""
    m = spec.model
    tokenizer = tokenizer or open_tokenizer(m.tokenizer, m.tokenizer_digest, m.vocab_size)
    name, docs, identity = documents(spec)
    key = hashlib.sha256(canonical_json({**identity, "tokenizer": tokenizer.digest, "page_tokens": spec.data.page_tokens})).hexdigest()
    corpus = build_corpus(name, docs, tokenizer, cache_dir, key, spec.data.page_tokens)
    if spec.data.digest and corpus.digest != spec.data.digest:
        raise CorpusError(
            f"corpus {spec.data.path or spec.data.source!r} builds to digest {corpus.digest[:16]}…, but the run pins "
            f"{spec.data.digest[:16]}… (different files, dataset revision, tokenizer or Python version?)"
        )
    return corpus
