"""Corpora as content-addressed, sharded, memory-mapped pages of tokens.

A corpus is the token stream of its documents (each ended by the tokenizer's
EOS) cut into pages of ``page_tokens`` tokens; the incomplete tail is dropped.
Its :class:`CorpusManifest` names it by content: ``page_digests_root`` is the
sha256 over the concatenated sha256 digests of every page, and ``digest`` is
the sha256 over the canonical JSON of the other fields, tokenizer digest and
token type included. A run spec pins ``digest``.

On disk, ``<cache_dir>/<digest>/`` holds ``manifest.json``, ``digests.bin``
(32 bytes per page) and ``shard-NNNNN.bin`` files of ``shard_pages`` pages
each, raw little-endian uint16 or uint32. The folder only appears, by rename,
once complete (node/data/shards.py).

Why the node's memory does not grow with the corpus: shards and digests are
memory-mapped, and opening a corpus reads only the digests (streamed, to check
the root) and the shard sizes. A page is hashed against its digest the first
time it is read, so a node touches the pages it trains on and the eval pages,
never the rest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEFAULT_PAGE_TOKENS = 4096
DEFAULT_SHARD_PAGES = 4096  # 16M tokens of 4096-token pages: a few dozen files for a billion tokens
MANIFEST_FILE = "manifest.json"
DIGESTS_FILE = "digests.bin"
DTYPES = ("uint16", "uint32")
DIGEST_BYTES = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("name", "tokenizer", "dtype", "page_tokens", "num_pages", "shard_pages", "page_digests_root")


class CorpusError(Exception):
    """Base class for corpus errors."""


class CorpusNotFoundError(CorpusError):
    """No corpus with the requested digest in the cache."""


class CorpusIntegrityError(CorpusError):
    """The cached files do not match their manifest (or the requested digest)."""


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.bin"


@dataclass(frozen=True)
class CorpusManifest:
    name: str
    tokenizer: str  # hex digest of the tokenizer's files (node/data/tokenizer.py)
    dtype: str  # "uint16" or "uint32"
    page_tokens: int
    num_pages: int
    shard_pages: int
    page_digests_root: str  # hex sha256
    digest: str  # hex sha256 over the canonical JSON of the fields above

    @staticmethod
    def compute_digest(fields: dict) -> str:
        return hashlib.sha256(canonical_json({k: fields[k] for k in _FIELDS})).hexdigest()

    @classmethod
    def create(cls, **fields) -> CorpusManifest:
        return cls(**fields, digest=cls.compute_digest(fields))

    @property
    def num_tokens(self) -> int:
        return self.page_tokens * self.num_pages

    @property
    def num_shards(self) -> int:
        return -(-self.num_pages // self.shard_pages)

    def shard_bytes(self, index: int) -> int:
        pages = min(self.shard_pages, self.num_pages - index * self.shard_pages)
        return pages * self.page_tokens * np.dtype(self.dtype).itemsize

    def to_json_bytes(self) -> bytes:
        return canonical_json(asdict(self))

    @classmethod
    def from_json_bytes(cls, data: bytes) -> CorpusManifest:
        """Strictly parse a manifest and check that its digest matches its fields."""
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
            raise CorpusIntegrityError(f"corpus manifest is not valid JSON: {e}") from None
        if not isinstance(obj, dict) or set(obj) != {*_FIELDS, "digest"}:
            raise CorpusIntegrityError("corpus manifest has missing or unexpected fields")
        if not isinstance(obj["name"], str) or not obj["name"] or obj["dtype"] not in DTYPES:
            raise CorpusIntegrityError("corpus manifest: bad name or dtype")
        for what in ("page_tokens", "num_pages", "shard_pages"):
            if type(obj[what]) is not int or obj[what] <= 0:
                raise CorpusIntegrityError(f"corpus manifest: bad {what}")
        for what in ("tokenizer", "page_digests_root", "digest"):
            if not isinstance(obj[what], str) or not _HEX64.fullmatch(obj[what]):
                raise CorpusIntegrityError(f"corpus manifest: bad {what}")
        if cls.compute_digest(obj) != obj["digest"]:
            raise CorpusIntegrityError("corpus manifest: digest does not match its fields")
        return cls(**obj)


class Corpus:
    """A corpus on disk: pages are read-only views into memory-mapped shards, each checked on first read."""

    def __init__(self, manifest: CorpusManifest, folder: Path):
        self.manifest = manifest
        self.path = folder
        self._digests = np.memmap(folder / DIGESTS_FILE, dtype=np.uint8, mode="r", shape=(manifest.num_pages * DIGEST_BYTES,))
        self._shards: dict[int, np.memmap] = {}
        self._checked = np.zeros(manifest.num_pages, dtype=bool)

    @property
    def num_pages(self) -> int:
        return self.manifest.num_pages

    @property
    def page_tokens(self) -> int:
        return self.manifest.page_tokens

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def __len__(self) -> int:
        return self.manifest.num_pages

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"page index must be an int, got {type(i).__name__}")
        i = int(i)
        if not 0 <= i < self.manifest.num_pages:
            raise IndexError(f"page {i} out of range [0, {self.manifest.num_pages})")
        return i

    def _shard(self, index: int) -> np.memmap:
        if index not in self._shards:
            m = self.manifest
            tokens = m.shard_bytes(index) // np.dtype(m.dtype).itemsize
            self._shards[index] = np.memmap(
                self.path / shard_name(index), dtype=np.dtype(m.dtype).newbyteorder("<"), mode="r", shape=(tokens,)
            )
        return self._shards[index]

    def page(self, i: int) -> np.ndarray:
        """Tokens of page ``i`` (length page_tokens), a read-only view, hashed against its digest on first read."""
        i = self._check_index(i)
        m = self.manifest
        start = (i % m.shard_pages) * m.page_tokens
        page = self._shard(i // m.shard_pages)[start : start + m.page_tokens]
        if not self._checked[i]:
            if hashlib.sha256(page.tobytes()).digest() != self.page_digest(i):
                raise CorpusIntegrityError(
                    f"corpus {m.digest[:16]}…: page {i} does not match its digest (the shard was modified or damaged)"
                )
            self._checked[i] = True
        return page

    def pages(self, indices: Iterable[int]) -> list[np.ndarray]:
        return [self.page(i) for i in indices]

    def page_digest(self, i: int) -> bytes:
        """Raw sha256 digest (32 bytes) of page ``i``."""
        i = self._check_index(i)
        return self._digests[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES].tobytes()

    def verify_page(self, i: int, tokens: np.ndarray | bytes) -> bool:
        """Whether ``tokens`` (e.g. received from elsewhere) are exactly page ``i``."""
        data = tokens.astype(np.dtype(self.manifest.dtype).newbyteorder("<")).tobytes() if isinstance(tokens, np.ndarray) else bytes(tokens)
        return hashlib.sha256(data).digest() == self.page_digest(i)

    def __repr__(self) -> str:
        m = self.manifest
        return f"Corpus(name={m.name!r}, pages={m.num_pages}x{m.page_tokens} {m.dtype}, digest={m.digest[:12]}...)"


def digests_root(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a digests file, streamed so that checking it costs no memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_corpus(cache_dir: Path | str, digest: str) -> Corpus:
    """The corpus named ``digest`` in ``cache_dir``, its manifest, digest root and shard sizes checked.

    Raises CorpusNotFoundError if no such corpus is cached, CorpusIntegrityError
    if its files do not match the manifest or the digest.
    """
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise CorpusNotFoundError(f"not a corpus digest (want 64 lowercase hex chars): {digest!r}")
    folder = Path(cache_dir) / digest
    if not (folder / MANIFEST_FILE).is_file():
        raise CorpusNotFoundError(f"unknown corpus digest {digest} (no {folder / MANIFEST_FILE}); build it first")
    manifest = CorpusManifest.from_json_bytes((folder / MANIFEST_FILE).read_bytes())
    if manifest.digest != digest:
        raise CorpusIntegrityError(f"corpus at {folder} has digest {manifest.digest}, expected {digest}")
    # The digests file first: its size bounds num_pages, hence how many shards there are to look at.
    sizes = ((shard_name(s), manifest.shard_bytes(s)) for s in range(manifest.num_shards))
    for name, size in itertools.chain([(DIGESTS_FILE, manifest.num_pages * DIGEST_BYTES)], sizes):
        try:
            actual = (folder / name).stat().st_size
        except FileNotFoundError:
            raise CorpusIntegrityError(f"corpus {digest}: {folder / name} is missing") from None
        if actual != size:
            raise CorpusIntegrityError(f"corpus {digest}: {folder / name} has {actual} bytes, the manifest implies {size}")
    if digests_root(folder / DIGESTS_FILE) != manifest.page_digests_root:
        raise CorpusIntegrityError(f"corpus {digest}: {DIGESTS_FILE} does not match the manifest's page digest root")
    return Corpus(manifest, folder)
