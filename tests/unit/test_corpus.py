"""Corpora: documents tokenized into sharded, content-addressed pages, checked, cached and resumable."""

import hashlib
import json

import numpy as np
import pytest

from node.config import ConfigError, DataSpec, ModelSpec, RunSpec, parse_run_file
from node.data.build import build_corpus
from node.data.corpus import CorpusError, CorpusIntegrityError, CorpusManifest, CorpusNotFoundError, load_corpus
from node.data.sources import open_corpus
from node.data.tokenizer import TokenizerError, load_tokenizer, open_tokenizer
from tests.support.corpora import bpe_model, documents, files_spec, write_jsonl, write_parquet

PT = 64


def _stream(docs, tokenizer) -> np.ndarray:
    return np.concatenate(tokenizer.encode_documents(docs))


def test_pages_shards_and_digests(tmp_path):
    docs = documents(30)
    tokenizer = load_tokenizer("byte")
    corpus = build_corpus("t", docs, tokenizer, tmp_path / "cache", key="k", page_tokens=PT, shard_pages=5)
    stream = _stream(docs, tokenizer)
    m = corpus.manifest
    assert (m.name, m.dtype, m.page_tokens, m.num_pages, m.shard_pages) == ("t", "uint16", PT, len(stream) // PT, 5)
    assert m.num_shards > 2 and m.tokenizer == tokenizer.digest
    for i in range(corpus.num_pages):
        page = corpus.page(i)
        assert page.dtype == np.uint16 and np.array_equal(page, stream[i * PT : (i + 1) * PT])
        assert corpus.page_digest(i) == hashlib.sha256(stream[i * PT : (i + 1) * PT].astype("<u2").tobytes()).digest()
        assert corpus.verify_page(i, page.copy())
    assert not corpus.verify_page(0, corpus.page(1))
    root = hashlib.sha256(b"".join(corpus.page_digest(i) for i in range(corpus.num_pages))).hexdigest()
    assert m.page_digests_root == root
    with pytest.raises(IndexError):
        corpus.page(corpus.num_pages)
    with pytest.raises((ValueError, TypeError)):
        corpus.page(0)[0] = 1
    folder = tmp_path / "cache" / m.digest
    sizes = sorted((p.name, p.stat().st_size) for p in folder.glob("shard-*.bin"))
    assert len(sizes) == m.num_shards and sizes[0][1] == 5 * PT * 2
    assert json.loads((folder / "manifest.json").read_text())["digest"] == m.digest
    assert not list((tmp_path / "cache" / "building").glob("k/*"))  # the build folder became the corpus


def test_opening_touches_no_page(tmp_path):
    """Opening reads the digests only; a page is read and checked when asked for, so memory follows the pages used."""
    corpus = build_corpus("t", documents(30), load_tokenizer("byte"), tmp_path, key="k", page_tokens=PT, shard_pages=5)
    reopened = load_corpus(tmp_path, corpus.digest)
    assert not reopened._shards and not reopened._checked.any()
    reopened.page(7)
    assert list(reopened._shards) == [1] and reopened._checked.sum() == 1


def test_digest_follows_content_and_tokenizer(tmp_path):
    docs = documents(20)
    byte = load_tokenizer("byte")
    a = build_corpus("t", docs, byte, tmp_path / "a", key="k", page_tokens=PT)
    b = build_corpus("t", docs, byte, tmp_path / "b", key="k", page_tokens=PT)
    c = build_corpus("t", documents(20, seed=1), byte, tmp_path / "c", key="k", page_tokens=PT)
    model = bpe_model(tmp_path / "tok", docs)
    bpe = open_tokenizer(model.tokenizer, model.tokenizer_digest, model.vocab_size)
    d = build_corpus("t", docs, bpe, tmp_path / "d", key="k", page_tokens=PT)
    assert a.digest == b.digest and len({a.digest, c.digest, d.digest}) == 3
    assert d.manifest.tokenizer == bpe.digest and d.num_pages < a.num_pages  # BPE packs more text per page
    assert np.array_equal(np.concatenate([d.page(i) for i in range(d.num_pages)]), _stream(docs, bpe)[: d.num_pages * PT])


def test_cache_is_reused_without_reading_the_source(tmp_path):
    first = build_corpus("t", documents(20), load_tokenizer("byte"), tmp_path, key="k", page_tokens=PT)

    def untouched():
        raise AssertionError("the source was read again")
        yield

    assert build_corpus("t", untouched(), load_tokenizer("byte"), tmp_path, key="k", page_tokens=PT).digest == first.digest


def test_interrupted_build_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr("node.data.build.BATCH_DOCUMENTS", 4)
    docs, byte = documents(60), load_tokenizer("byte")
    whole = build_corpus("t", docs, byte, tmp_path / "whole", key="k", page_tokens=PT, shard_pages=4)

    def interrupted():
        for i, d in enumerate(docs):
            if i == 45:
                raise KeyboardInterrupt
            yield d

    with pytest.raises(KeyboardInterrupt):
        build_corpus("t", interrupted(), byte, tmp_path / "cut", key="k", page_tokens=PT, shard_pages=4)
    progress = json.loads((tmp_path / "cut" / "building" / "k" / "progress.json").read_text())
    assert progress["shards"] >= 1 and 0 < progress["documents"] <= 45
    read = []

    def counted():
        for d in docs:
            read.append(d)
            yield d

    resumed = build_corpus("t", counted(), byte, tmp_path / "cut", key="k", page_tokens=PT, shard_pages=4)
    assert resumed.digest == whole.digest
    assert len(read) == len(docs)  # skipped, not tokenized again: the encoder saw only the rest
    assert not (tmp_path / "cut" / "building" / "k").exists()


def test_tampering_is_detected(tmp_path):
    corpus = build_corpus("t", documents(30), load_tokenizer("byte"), tmp_path, key="k", page_tokens=PT, shard_pages=5)
    folder = tmp_path / corpus.digest
    shard = folder / "shard-00001.bin"
    data = bytearray(shard.read_bytes())
    data[3] ^= 1
    shard.write_bytes(bytes(data))
    tampered = load_corpus(tmp_path, corpus.digest)  # sizes and digests still fit: found when the page is read
    tampered.page(0)
    with pytest.raises(CorpusIntegrityError, match="page 5 does not match"):
        tampered.page(5)
    shard.write_bytes(bytes(data[:-2]))
    with pytest.raises(CorpusIntegrityError, match="bytes"):
        load_corpus(tmp_path, corpus.digest)
    digests = folder / "digests.bin"
    raw = bytearray(digests.read_bytes())
    raw[0] ^= 1
    digests.write_bytes(bytes(raw))
    with pytest.raises(CorpusIntegrityError):
        load_corpus(tmp_path, corpus.digest)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["num_pages"] += 1
    with pytest.raises(CorpusIntegrityError, match="digest does not match"):
        CorpusManifest.from_json_bytes(json.dumps(manifest).encode())
    with pytest.raises(CorpusNotFoundError):
        load_corpus(tmp_path, "0" * 64)
    with pytest.raises(CorpusNotFoundError):
        load_corpus(tmp_path, "../etc")


def test_jsonl_and_parquet_sources(tmp_path):
    docs = documents(25)
    model = bpe_model(tmp_path / "tok", docs)
    jsonl = open_corpus(files_spec(write_jsonl(tmp_path / "j" / "part.jsonl", docs), model), tmp_path / "cache")
    parquet = open_corpus(files_spec(write_parquet(tmp_path / "p" / "part.parquet", docs), model), tmp_path / "cache")
    assert jsonl.num_pages == parquet.num_pages > 10
    assert all(np.array_equal(jsonl.page(i), parquet.page(i)) for i in range(jsonl.num_pages))
    # a glob of several files reads them in sorted order
    write_jsonl(tmp_path / "many" / "a.jsonl", docs[:10])
    write_jsonl(tmp_path / "many" / "b.jsonl", docs[10:])
    many = open_corpus(files_spec(tmp_path / "many" / "*.jsonl", model), tmp_path / "cache")
    assert many.num_pages == jsonl.num_pages and np.array_equal(many.page(3), jsonl.page(3))
    # a Hugging Face dataset by name: here a local dataset folder, the path `datasets` resolves first
    hub = open_corpus(RunSpec(model=model, data=DataSpec(source="hf", path=str(tmp_path / "p"), page_tokens=PT)), tmp_path / "cache")
    assert np.array_equal(hub.page(2), parquet.page(2))
    limited = open_corpus(files_spec(tmp_path / "j" / "part.jsonl", model, max_documents=5), tmp_path / "cache")
    assert limited.num_pages < jsonl.num_pages


def test_bad_sources_get_clear_errors(tmp_path):
    docs = documents(10)
    with pytest.raises(CorpusError, match="no field 'body'"):
        open_corpus(files_spec(write_jsonl(tmp_path / "a.jsonl", docs), text_field="body"), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "e.jsonl").write_text("")
    with pytest.raises(CorpusError, match="0 documents"):
        open_corpus(files_spec(tmp_path / "empty" / "e.jsonl"), tmp_path / "cache")
    with pytest.raises(CorpusError, match="matches no files"):
        open_corpus(files_spec(tmp_path / "nothing" / "*.jsonl"), tmp_path / "cache")
    write_parquet(tmp_path / "mixed" / "b.parquet", docs)
    write_jsonl(tmp_path / "mixed" / "a.jsonl", docs)
    with pytest.raises(CorpusError, match="want files of one of"):
        open_corpus(files_spec(tmp_path / "mixed" / "*"), tmp_path / "cache")
    spec = files_spec(tmp_path / "a.jsonl")
    built = open_corpus(spec, tmp_path / "cache")
    pinned = RunSpec(data=DataSpec(source="files", path=str(tmp_path / "a.jsonl"), page_tokens=PT, digest="0" * 64))
    with pytest.raises(CorpusError, match="but the run pins"):
        open_corpus(pinned, tmp_path / "cache")
    assert built.num_pages > 0
    with pytest.raises(CorpusError, match="Hugging Face dataset"):
        open_corpus(RunSpec(data=DataSpec(source="hf", path=str(tmp_path / "absent-dataset"))), tmp_path / "cache")


def test_tokenizer_is_pinned(tmp_path):
    model = bpe_model(tmp_path / "tok", documents(10))
    tokenizer = open_tokenizer(model.tokenizer, model.tokenizer_digest, model.vocab_size)
    assert tokenizer.vocab_size == model.vocab_size and tokenizer.eos_id is not None
    with pytest.raises(TokenizerError, match="differ from the run's"):
        open_tokenizer(model.tokenizer, "f" * 64, model.vocab_size)
    with pytest.raises(TokenizerError, match="does not pin its tokenizer"):
        open_tokenizer(model.tokenizer, "", model.vocab_size)
    with pytest.raises(TokenizerError, match="vocab_size"):
        open_tokenizer(model.tokenizer, model.tokenizer_digest, 256)
    with pytest.raises(TokenizerError, match="no such file"):
        load_tokenizer(str(tmp_path / "missing.json"))
    other = bpe_model(tmp_path / "other", documents(10, seed=3), vocab=650)
    assert other.tokenizer_digest != model.tokenizer_digest
    with pytest.raises(ConfigError, match="outside what the tiny preset allows"):
        parse_run_file('[model]\npreset = "tiny"\nvocab_size = 100000\n')
    with pytest.raises(ConfigError, match="source must be one of"):
        parse_run_file('[data]\nsource = "ftp"\n')
    assert ModelSpec().tokenizer == "byte" and load_tokenizer("byte").dtype == np.uint16


def test_stdlib_corpus(tmp_path):
    corpus = open_corpus(RunSpec(), tmp_path)
    assert corpus.manifest.name == "python-stdlib" and corpus.num_pages > 1000
    assert corpus.page(0).max() < 256


def test_data_build_prints_the_digest_to_pin(tmp_path, capsys):
    from node.cli import main
    from node.config import NodeConfig, render_run_file

    spec = files_spec(write_jsonl(tmp_path / "d.jsonl", documents(20)))
    run = tmp_path / "run.toml"
    run.write_text(render_run_file(spec, NodeConfig(data_dir=str(tmp_path / "node"))))
    assert main(["data", "build", "--config", str(run)]) == 0
    digest = open_corpus(spec, tmp_path / "node" / "corpus").digest
    assert f'[data] digest = "{digest}"' in capsys.readouterr().out
    run.write_text(render_run_file(RunSpec(data=DataSpec(source="files", path=str(tmp_path / "none.jsonl"))), NodeConfig()))
    assert main(["data", "build", "--config", str(run)]) == 2
    assert "matches no files" in capsys.readouterr().err
