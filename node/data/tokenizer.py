"""The run's tokenizer: byte level, or a Hugging Face tokenizer pinned by the digest of its files.

Two nodes that tokenize the same documents with different tokenizers would
train on different pages without noticing, so the spec pins the tokenizer's
files by sha256 (``[model] tokenizer_digest``) and its vocabulary size, and a
node refuses to start when either differs. The digest is over the files that
define the tokenizer (the names below, those present, sorted), each hashed with
its name and length, so it does not depend on where the folder lives.

``byte`` needs no files: a token is a byte of the UTF-8 text. For export it is
written as a BPE model with no merges over GPT-2's byte-to-character table, so
each byte's id is the byte's value and ``transformers`` loads it like any other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer, PreTrainedTokenizerFast

BYTE = "byte"
BYTE_VOCAB = 256
BYTE_SEPARATOR = b"\n\n"  # between documents of a byte-level corpus
TOKENIZER_FILES = (
    "added_tokens.json",
    "merges.txt",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
)
EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")


class TokenizerError(ValueError):
    """A tokenizer that cannot be loaded, or that differs from the one the run pins."""


@dataclass(frozen=True)
class TextTokenizer:
    """Text to token ids, the same on every node of a run."""

    name: str
    digest: str  # hex sha256 of the files; the digest of the empty file list for "byte"
    hf: PreTrainedTokenizerFast  # what export saves and `sample` decodes with
    eos_id: int | None  # ends every document; None: documents are separated by a blank line

    @property
    def vocab_size(self) -> int:
        return BYTE_VOCAB if self.name == BYTE else len(self.hf)

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)

    def encode_documents(self, texts: list[str]) -> list[np.ndarray]:
        """Each document's ids followed by its end (EOS, or the blank line of byte level)."""
        if self.name == BYTE:
            return [np.frombuffer(t.encode("utf-8", "replace") + BYTE_SEPARATOR, np.uint8).astype(self.dtype) for t in texts]
        encoded = self.hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        end = [self.eos_id] if self.eos_id is not None else self.hf.backend_tokenizer.encode("\n\n", add_special_tokens=False).ids
        return [np.asarray(e.ids + end, dtype=self.dtype) for e in encoded]


def token_dtype(vocab_size: int) -> np.dtype:
    """The page token type of a vocabulary: uint16 while every id fits, else uint32 (little-endian on disk)."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def byte_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = bytes_to_unicode()
    tokenizer = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(BYTE_VOCAB)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def files_digest(files: list[Path]) -> str:
    h = hashlib.sha256(b"gradswarm/tokenizer/v1")
    for f in sorted(files, key=lambda p: p.name):
        data = f.read_bytes()
        h.update(f.name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _resolve(name: str) -> tuple[Path, list[Path]]:
    """The folder and defining files of a local folder, a tokenizer.json, or a hub name (from the cache or the hub)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        if name.startswith((".", "/", "~")):
            raise TokenizerError(f"tokenizer {name!r}: no such file or folder")
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(name, allow_patterns=list(TOKENIZER_FILES)))
        except Exception as e:  # offline, unknown repo, gated: all read as "cannot get it"
            raise TokenizerError(f"tokenizer {name!r} is neither a local path nor a reachable Hugging Face repo: {e}") from None
    files = [path / f for f in TOKENIZER_FILES if (path / f).is_file()]
    if not files:
        raise TokenizerError(f"tokenizer {name!r}: {path} holds none of {', '.join(TOKENIZER_FILES)}")
    return path, files


def _eos(hf: PreTrainedTokenizerFast) -> int | None:
    if hf.eos_token_id is not None:
        return int(hf.eos_token_id)
    vocab = hf.get_vocab()
    for token in EOS_NAMES:
        if token in vocab:
            hf.eos_token = token
            return int(vocab[token])
    return None


def load_tokenizer(name: str) -> TextTokenizer:
    """``byte`` or a Hugging Face tokenizer by local path or hub name, with its digest."""
    if name == BYTE:
        return TextTokenizer(BYTE, files_digest([]), byte_tokenizer(), None)
    folder, files = _resolve(name)
    try:
        if len(files) == 1 and files[0].suffix == ".json":
            hf = PreTrainedTokenizerFast(tokenizer_file=str(files[0]))
        else:
            hf = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as e:  # a damaged or foreign file: its loader's message says what is wrong
        raise TokenizerError(f"tokenizer {name!r} does not load: {e}") from None
    if not isinstance(hf, PreTrainedTokenizerFast):
        raise TokenizerError(f"tokenizer {name!r} has no fast (Rust) implementation")
    return TextTokenizer(name, files_digest(files), hf, _eos(hf))


def open_tokenizer(name: str, digest: str, vocab_size: int) -> TextTokenizer:
    """The run's tokenizer, refusing one whose files or vocabulary differ from what the spec pins."""
    tokenizer = load_tokenizer(name)
    if name != BYTE and not digest:
        raise TokenizerError(
            f'the run does not pin its tokenizer: set [model] tokenizer_digest = "{tokenizer.digest}" if these are its files'
        )
    if name != BYTE and tokenizer.digest != digest:
        raise TokenizerError(
            f"tokenizer {name!r} has digest {tokenizer.digest}, the run pins {digest}: this node's tokenizer files differ from the run's"
        )
    if tokenizer.vocab_size != vocab_size:
        raise TokenizerError(f"tokenizer {name!r} has {tokenizer.vocab_size} ids, the run's [model] vocab_size is {vocab_size}")
    return tokenizer
