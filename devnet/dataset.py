"""The demo's own data for `--data jsonl`: a jsonl dataset and a BPE tokenizer trained on it, made here.

It shows the path a real run takes (documents read with `datasets`, a Hugging
Face tokenizer pinned by digest, a vocabulary that sets the model's) without
downloading anything: the documents are the Python standard library's files,
one per line of jsonl, and the tokenizer is trained on them with `tokenizers`.
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


def write_jsonl(out: Path) -> Path:
    lines = [json.dumps({"path": f.name, "text": f.read_text("utf-8", "replace")}) for f in stdlib_files()]
    atomic_write(out, ("\n".join(lines) + "\n").encode())
    return out


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


def jsonl_run(out: Path) -> tuple[ModelSpec, DataSpec]:
    """The model and data sections of a demo on a jsonl dataset with a BPE tokenizer trained here."""
    out.mkdir(parents=True, exist_ok=True)
    dataset = write_jsonl(out / "stdlib.jsonl")
    texts = [json.loads(line)["text"] for line in dataset.read_text().splitlines()]
    tokenizer = load_tokenizer(str(train_bpe(texts, VOCAB, out / "tokenizer" / "tokenizer.json")))
    model = ModelSpec(tokenizer=tokenizer.name, tokenizer_digest=tokenizer.digest, vocab_size=tokenizer.vocab_size)
    return model, DataSpec(source="files", path=str(dataset), text_field="text")
