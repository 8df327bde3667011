"""Writing a corpus: a token stream cut into pages and shards, resumable after an interruption.

Tokenizing a large dataset takes hours, so a build that is interrupted (Ctrl-C,
a crash, a reboot) resumes where it stopped instead of starting over. The
build folder holds the finished shards, ``digests.bin`` (the digests of their
pages), ``carry.bin`` (tokens read past the last shard) and ``progress.json``
(how many shards and documents are done). Each shard and the carry are
written atomically before the progress that names them, so after any crash the
progress describes files that exist and are whole; digests appended after the
last recorded shard are cut off on resume.

When the stream ends, the folder gets its manifest and is renamed to the
corpus digest: a corpus folder exists only once complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from node.data.corpus import (
    DIGEST_BYTES,
    DIGESTS_FILE,
    MANIFEST_FILE,
    CorpusError,
    CorpusManifest,
    canonical_json,
    digests_root,
    shard_name,
)
from node.fsutil import atomic_write

PROGRESS_FILE = "progress.json"
CARRY_FILE = "carry.bin"


class ShardWriter:
    """Accepts documents' tokens in order; writes a shard whenever ``shard_pages`` pages are full."""

    def __init__(self, folder: Path, dtype: np.dtype, page_tokens: int, shard_pages: int):
        self.folder = folder
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.page_tokens = page_tokens
        self.shard_pages = shard_pages
        self.shards, self.documents = 0, 0
        folder.mkdir(parents=True, exist_ok=True)
        self._pending: list[np.ndarray] = []
        self._pending_tokens = 0
        self._resume()

    def _resume(self) -> None:
        progress = self.folder / PROGRESS_FILE
        if progress.is_file():
            state = json.loads(progress.read_bytes())
            self.shards, self.documents = int(state["shards"]), int(state["documents"])
            carry = np.fromfile(self.folder / CARRY_FILE, dtype=self.dtype)
            if carry.size != int(state["carry"]):
                raise CorpusError(f"{self.folder}: the carry does not match the progress; delete the folder to rebuild")
            self._add_pending(carry)
        for stale in self.folder.glob("shard-*.bin"):
            if int(stale.stem.split("-")[1]) >= self.shards:
                stale.unlink()
        with open(self.folder / DIGESTS_FILE, "ab") as f:
            f.truncate(self.shards * self.shard_pages * DIGEST_BYTES)

    def _add_pending(self, tokens: np.ndarray) -> None:
        if tokens.size:
            self._pending.append(tokens)
            self._pending_tokens += tokens.size

    def add(self, documents: list[np.ndarray]) -> None:
        """Append a batch of documents' tokens; a full shard is written (and the progress saved) at once."""
        for tokens in documents:
            self._add_pending(tokens.astype(self.dtype, copy=False))
        self.documents += len(documents)
        per_shard = self.shard_pages * self.page_tokens
        while self._pending_tokens >= per_shard:
            stream = np.concatenate(self._pending)
            self._write_shard(stream[:per_shard])
            self._pending, self._pending_tokens = [], 0
            self._add_pending(stream[per_shard:])
            self._save_progress()

    @property
    def tokens(self) -> int:
        return self.shards * self.shard_pages * self.page_tokens + self._pending_tokens

    def _write_shard(self, tokens: np.ndarray) -> None:
        atomic_write(self.folder / shard_name(self.shards), memoryview(tokens).cast("B"))
        pages = tokens.reshape(-1, self.page_tokens)
        with open(self.folder / DIGESTS_FILE, "ab") as f:
            f.write(b"".join(hashlib.sha256(page.tobytes()).digest() for page in pages))
            f.flush()
            os.fsync(f.fileno())
        self.shards += 1

    def _save_progress(self) -> None:
        carry = np.concatenate(self._pending) if self._pending else np.zeros(0, self.dtype)
        atomic_write(self.folder / CARRY_FILE, memoryview(carry).cast("B"))
        atomic_write(
            self.folder / PROGRESS_FILE, canonical_json({"shards": self.shards, "documents": self.documents, "carry": int(carry.size)})
        )

    def finish(self, name: str, tokenizer_digest: str, cache_dir: Path) -> CorpusManifest:
        """The last whole pages become the last shard; the folder is renamed to the corpus digest."""
        tail = np.concatenate(self._pending) if self._pending else np.zeros(0, self.dtype)
        whole = tail.size // self.page_tokens * self.page_tokens
        if whole:
            self._write_shard(tail[:whole])
        num_pages = (self.shards - (1 if whole else 0)) * self.shard_pages + whole // self.page_tokens
        if num_pages == 0:
            raise CorpusError(
                f"corpus {name!r} has {self.tokens} tokens in {self.documents} documents, fewer than one page of {self.page_tokens}"
            )
        manifest = CorpusManifest.create(
            name=name,
            tokenizer=tokenizer_digest,
            dtype=str(np.dtype(self.dtype.newbyteorder("="))),
            page_tokens=self.page_tokens,
            num_pages=num_pages,
            shard_pages=self.shard_pages,
            page_digests_root=digests_root(self.folder / DIGESTS_FILE),
        )
        atomic_write(self.folder / MANIFEST_FILE, manifest.to_json_bytes())
        for f in (PROGRESS_FILE, CARRY_FILE):
            (self.folder / f).unlink(missing_ok=True)
        target = Path(cache_dir) / manifest.digest
        if target.exists():  # built before under another key: the same bytes
            shutil.rmtree(self.folder)
        else:
            os.replace(self.folder, target)
        return manifest
