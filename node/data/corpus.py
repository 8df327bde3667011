"""Corpora as content-addressed manifests of byte-level token pages.

Tokenization is byte level: a token is a byte value (vocabulary of 256).
A corpus is a sequence of text bytes cut into pages of ``page_tokens`` tokens
(the incomplete tail is dropped).  Its :class:`CorpusManifest` names it by
content: ``page_digests_root`` is the sha256 over the concatenated sha256
digests of every page (so any node can check a single page it holds), and
``digest`` is the sha256 over the canonical JSON of the other manifest fields.
A run spec pins ``digest``.

On disk a corpus lives in ``<cache_dir>/<digest>/`` as ``tokens.bin`` (raw
uint8 tokens, ``num_pages * page_tokens`` bytes) and ``manifest.json``.  Files
are written atomically (temp file in the same folder, fsync, ``os.replace``)
and ``manifest.json`` is written last, so a folder with a manifest is
complete.  Several processes may build the same corpus at once: they write
identical bytes and each replace is atomic, so the cache never holds a
half-written file.  ``load_corpus`` re-hashes every page and checks the root
against the manifest (about 0.1 s for 30 MB).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "VOCAB_SIZE",
    "FILE_SEPARATOR",
    "DEFAULT_PAGE_TOKENS",
    "CorpusError",
    "CorpusNotFoundError",
    "CorpusIntegrityError",
    "CorpusManifest",
    "Corpus",
    "encode_bytes",
    "page_digests_root",
    "load_corpus",
]

VOCAB_SIZE = 256
FILE_SEPARATOR = b"\n\n"
DEFAULT_PAGE_TOKENS = 4096
TOKENS_FILE = "tokens.bin"
MANIFEST_FILE = "manifest.json"
INDEX_DIR = "index"
STDLIB_CORPUS_NAME = "python-stdlib"

_HEX64 = re.compile(r"[0-9a-f]{64}")


class CorpusError(Exception):
    """Base class for corpus errors."""


class CorpusNotFoundError(CorpusError):
    """No corpus with the requested digest in the cache."""


class CorpusIntegrityError(CorpusError):
    """The cached files do not match their manifest (or the requested digest)."""


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def page_digests_root(digests: Iterable[bytes]) -> str:
    """sha256 (hex) over the concatenation of per-page raw sha256 digests."""
    h = hashlib.sha256()
    for d in digests:
        if len(d) != 32:
            raise ValueError("page digests must be 32-byte sha256 digests")
        h.update(d)
    return h.hexdigest()


@dataclass(frozen=True)
class CorpusManifest:
    name: str
    page_tokens: int
    num_pages: int
    page_digests_root: str  # hex sha256
    digest: str  # hex sha256 over the canonical JSON of the fields above

    @staticmethod
    def compute_digest(name: str, page_tokens: int, num_pages: int, page_digests_root: str) -> str:
        body = {
            "name": name,
            "page_tokens": int(page_tokens),
            "num_pages": int(num_pages),
            "page_digests_root": page_digests_root,
        }
        return hashlib.sha256(_canonical_json(body)).hexdigest()

    @classmethod
    def create(cls, name: str, page_tokens: int, num_pages: int, page_digests_root: str) -> CorpusManifest:
        return cls(
            name=name,
            page_tokens=int(page_tokens),
            num_pages=int(num_pages),
            page_digests_root=page_digests_root,
            digest=cls.compute_digest(name, page_tokens, num_pages, page_digests_root),
        )

    @property
    def num_tokens(self) -> int:
        return self.page_tokens * self.num_pages

    def to_json_bytes(self) -> bytes:
        return _canonical_json(asdict(self))

    @classmethod
    def from_json_bytes(cls, data: bytes) -> CorpusManifest:
        """Strictly parse a manifest and check that its digest matches its fields."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CorpusIntegrityError(f"corpus manifest is not valid JSON: {e}") from None
        if not isinstance(obj, dict) or set(obj) != {"name", "page_tokens", "num_pages", "page_digests_root", "digest"}:
            raise CorpusIntegrityError("corpus manifest has missing or unexpected fields")
        name, pt, n = obj["name"], obj["page_tokens"], obj["num_pages"]
        root, digest = obj["page_digests_root"], obj["digest"]
        if not isinstance(name, str) or not name:
            raise CorpusIntegrityError("corpus manifest: bad name")
        for v, what in ((pt, "page_tokens"), (n, "num_pages")):
            if type(v) is not int or v <= 0:
                raise CorpusIntegrityError(f"corpus manifest: bad {what}")
        for v, what in ((root, "page_digests_root"), (digest, "digest")):
            if not isinstance(v, str) or not _HEX64.fullmatch(v):
                raise CorpusIntegrityError(f"corpus manifest: bad {what}")
        m = cls(name=name, page_tokens=pt, num_pages=n, page_digests_root=root, digest=digest)
        if cls.compute_digest(name, pt, n, root) != digest:
            raise CorpusIntegrityError("corpus manifest: digest does not match its fields")
        return m


def encode_bytes(data: bytes) -> np.ndarray:
    """Byte-level tokenization: one uint8 token per byte."""
    return np.frombuffer(data, dtype=np.uint8)


def _page_digests(tokens: np.ndarray, page_tokens: int, num_pages: int) -> list[bytes]:
    mv = memoryview(np.ascontiguousarray(tokens[: page_tokens * num_pages])).cast("B")
    return [hashlib.sha256(mv[i * page_tokens : (i + 1) * page_tokens]).digest() for i in range(num_pages)]


class Corpus:
    """A verified corpus: pages are views into a read-only memmap of tokens.bin."""

    def __init__(self, manifest: CorpusManifest, tokens: np.ndarray, page_digests: list[bytes], path: Path | None = None):
        if tokens.dtype != np.uint8 or tokens.ndim != 1 or tokens.shape[0] != manifest.num_tokens:
            raise CorpusIntegrityError("token array does not match the manifest")
        if len(page_digests) != manifest.num_pages:
            raise CorpusIntegrityError("page digest count does not match the manifest")
        self.manifest = manifest
        self.path = path
        self._tokens = tokens
        self._page_digests = list(page_digests)

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

    def page(self, i: int) -> np.ndarray:
        """Tokens of page ``i`` (uint8, length page_tokens), a read-only view."""
        i = self._check_index(i)
        pt = self.manifest.page_tokens
        return self._tokens[i * pt : (i + 1) * pt]

    def pages(self, indices: Iterable[int]) -> list[np.ndarray]:
        return [self.page(i) for i in indices]

    def page_digest(self, i: int) -> bytes:
        """Raw sha256 digest (32 bytes) of page ``i``."""
        return self._page_digests[self._check_index(i)]

    def verify_page(self, i: int, tokens: np.ndarray | bytes) -> bool:
        """Whether ``tokens`` (e.g. received from elsewhere) are exactly page ``i``."""
        data = tokens.tobytes() if isinstance(tokens, np.ndarray) else bytes(tokens)
        return len(data) == self.manifest.page_tokens and hashlib.sha256(data).digest() == self.page_digest(i)

    def __repr__(self) -> str:
        m = self.manifest
        return f"Corpus(name={m.name!r}, pages={m.num_pages}x{m.page_tokens}, digest={m.digest[:12]}...)"


# ----------------------------------------------------------------------------- disk


def _check_digest_arg(digest: str) -> str:
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise CorpusNotFoundError(f"not a corpus digest (want 64 lowercase hex chars): {digest!r}")
    return digest


def load_corpus(cache_dir: Path | str, digest: str) -> Corpus:
    """Load the corpus named ``digest`` from ``cache_dir``.

    Raises CorpusNotFoundError if no such corpus is cached, CorpusIntegrityError
    if its files do not match the manifest / digest.  Every page is re-hashed
    and the root compared with the manifest (about 0.1 s per 30 MB).
    """
    digest = _check_digest_arg(digest)
    folder = Path(cache_dir) / digest
    mpath, tpath = folder / MANIFEST_FILE, folder / TOKENS_FILE
    if not mpath.is_file():
        raise CorpusNotFoundError(f"unknown corpus digest {digest} (no {mpath}); build it first")
    manifest = CorpusManifest.from_json_bytes(mpath.read_bytes())
    if manifest.digest != digest:
        raise CorpusIntegrityError(f"corpus at {folder} has digest {manifest.digest}, expected {digest}")
    try:
        size = tpath.stat().st_size
    except FileNotFoundError:
        raise CorpusIntegrityError(f"corpus {digest}: {tpath} is missing") from None
    if size != manifest.num_tokens:
        raise CorpusIntegrityError(f"corpus {digest}: {tpath} has {size} bytes, manifest says {manifest.num_tokens}")
    tokens = np.memmap(tpath, dtype=np.uint8, mode="r", shape=(manifest.num_tokens,))
    digests = _page_digests(tokens, manifest.page_tokens, manifest.num_pages)
    if page_digests_root(digests) != manifest.page_digests_root:
        raise CorpusIntegrityError(
            f"corpus {digest}: {tpath} does not match its manifest (page digest root differs; the file was modified or damaged)"
        )
    return Corpus(manifest, tokens, digests, path=folder)
