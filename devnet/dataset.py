"""The demo's own data for `--data jsonl|parquet`: a dataset and a BPE tokenizer trained on it, made here.

It shows the path a real run takes (documents read with `datasets`, a Hugging
Face tokenizer pinned by digest, a vocabulary that sets the model's) without
downloading anything: the documents are the Python standard library's files,
one per row of jsonl or parquet, and the tokenizer is trained on them with `tokenizers`.
"""

from __future__ import annotations

import json
from pathlib import Path

from node.config import DataSpec, ModelSpec
from node.data.sources import stdlib_files
from node.data.tokenizer import load_tokenizer
from node.fsutil import atomic_write

VOCAB = 4096
END = "<|endoftext|>"


def write_dataset(out: Path) -> tuple[Path, list[str]]:
    """The stdlib's files as rows of `out` (.jsonl or .parquet), and their texts."""
    files = stdlib_files()
    texts = [f.read_text("utf-8", "replace") for f in files]
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        partial = out.with_name(out.name + ".partial")
        pq.write_table(pa.table({"path": [f.name for f in files], "text": texts}), partial)
        partial.replace(out)
    else:
        rows = [json.dumps({"path": f.name, "text": t}) for f, t in zip(files, texts, strict=True)]
        atomic_write(out, ("\n".join(rows) + "\n").encode())
    return out, texts


def train_bpe(texts: list[str], vocab: int, out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, tokenizer.to_str().encode())
    return out


def dataset_run(out: Path, kind: str) -> tuple[ModelSpec, DataSpec]:
    """The model and data sections of a demo on a `kind` ("jsonl" or "parquet") dataset with a BPE tokenizer trained here."""
    out.mkdir(parents=True, exist_ok=True)
    dataset, texts = write_dataset(out / f"stdlib.{kind}")
    tokenizer = load_tokenizer(str(train_bpe(texts, VOCAB, out / "tokenizer" / "tokenizer.json")))
    model = ModelSpec(tokenizer=tokenizer.name, tokenizer_digest=tokenizer.digest, vocab_size=tokenizer.vocab_size)
    return model, DataSpec(source="files", path=str(dataset), text_field="text")
