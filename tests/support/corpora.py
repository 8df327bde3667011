"""Stand-ins for a corpus: documents and tokenizers the tests make themselves, token pages for the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from devnet.dataset import train_bpe
from node.config import DataSpec, ModelSpec, RunSpec
from node.data.tokenizer import load_tokenizer


def documents(n: int = 40, seed: int = 0) -> list[str]:
    """Python-like documents of varied length, different for each seed."""
    rng = np.random.default_rng(seed)
    return [
        "".join(f"def f{seed}_{i}_{k}(x):\n    return x * {int(rng.integers(100))} + {k}\n\n" for k in range(int(rng.integers(3, 30))))
        for i in range(n)
    ]


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)))
    return path


def write_parquet(path: Path, docs: list[str], field: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({field: docs, "id": list(range(len(docs)))}), path)
    return path


def bpe_model(folder: Path, docs: list[str], vocab: int = 600, preset: str = "tiny") -> ModelSpec:
    """A [model] section with a BPE tokenizer trained here on ``docs``, pinned by its digest."""
    tokenizer = load_tokenizer(str(train_bpe(docs, vocab, folder / "tokenizer.json")))
    return ModelSpec(preset=preset, tokenizer=tokenizer.name, tokenizer_digest=tokenizer.digest, vocab_size=tokenizer.vocab_size)


def files_spec(path: Path, model: ModelSpec | None = None, page_tokens: int = 64, **data) -> RunSpec:
    return RunSpec(model=model or ModelSpec(), data=DataSpec(source="files", path=str(path), page_tokens=page_tokens, **data))


def text_pages(n_pages: int = 12, page_tokens: int = 512) -> list[np.ndarray]:
    """A small, learnable byte corpus (repetitive English-like text) as pages."""
    words = b"the quick brown fox jumps over the lazy dog while def return import class self".split()
    rng = np.random.default_rng(0)
    out = bytearray()
    while len(out) < n_pages * page_tokens:
        out += b" ".join(words[i] for i in rng.integers(0, len(words), 8)) + b".\n"
    arr = np.frombuffer(bytes(out[: n_pages * page_tokens]), dtype=np.uint8)
    return [arr[i * page_tokens : (i + 1) * page_tokens] for i in range(n_pages)]


class Pages:
    """The little of a Corpus the trainer reads: pages by index."""

    def __init__(self, n: int = 4, tokens: int = 300):
        rng = np.random.default_rng(0)
        self._pages = [rng.integers(0, 256, tokens).astype(np.uint16) for _ in range(n)]

    def pages(self, ids):
        return [self._pages[i] for i in ids]
