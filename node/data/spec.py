"""``[data]`` of a run spec: its own module because the data package owns what the fields mean."""

from __future__ import annotations

from dataclasses import dataclass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


DATA_SOURCES = ("stdlib", "files", "hf")


@dataclass(frozen=True)
class DataSpec:
    """Where the documents come from (node/data/sources.py) and how they become pages.

    ``source``: ``stdlib`` (the running Python's standard library, the default every
    machine has), ``files`` (``path`` is a glob of local .jsonl, .parquet, .arrow or
    .txt files) or ``hf`` (``path`` is a Hugging Face dataset name or folder, read
    with ``datasets`` at ``revision`` and ``split``)."""

    source: str = "stdlib"
    path: str = ""
    text_field: str = "text"
    revision: str = ""  # hf: a commit, tag or branch; pin a commit for a run
    split: str = "train"
    max_documents: int = 0  # 0: all of them
    digest: str = ""  # pins the corpus manifest; empty means "whatever the source builds to here"
    page_tokens: int = 4096
    eval_pages: int = 8
    pages_per_round: int = 8

    def __post_init__(self) -> None:
        require(self.source in DATA_SOURCES, f"source must be one of {', '.join(DATA_SOURCES)}, not {self.source!r}")
        require(self.source == "stdlib" or bool(self.path), f"source {self.source!r} needs a path")
        require(bool(self.text_field) and self.max_documents >= 0, "text_field must be set, max_documents not negative")
        require(self.page_tokens >= 2, "page_tokens must be at least 2")
        require(self.eval_pages >= 1 and self.pages_per_round >= 1, "eval_pages and pages_per_round must be positive")
