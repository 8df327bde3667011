"""`gradswarm run init|show` and the example run specs, offline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.cli import main
from node.commands.template import COMMENTS, all_paths, render_commented
from node.config import ChainSpec, DataSpec, ModelSpec, NodeConfig, RunSpec, load_run_file, parse_run_file
from protocol.plan import LrCurve, PlanSpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/run.toml"))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_then_show_on_a_fresh_folder(tmp_path, capsys):
    out = tmp_path / "run.toml"
    code, text, _ = run_cli(capsys, "run", "init", "--out", str(out))
    assert code == 0 and "wrote" in text
    spec, node = load_run_file(out)
    assert (spec, node) == (RunSpec(chain=ChainSpec(kind="dev", path="chain.sqlite")), NodeConfig())
    assert spec.run_id.hex() in text

    code, text, _ = run_cli(capsys, "run", "show", str(out))
    assert code == 0
    assert f"run id     {spec.run_id.hex()}" in text
    assert "tiny, 1,115,264 parameters with vocab 256" in text
    assert "per contribution" in text and "G = 32" in text
    assert f"{40 * 8 * 128:,} per node per round" in text and f"{32 * 40 * 8 * 128:,} for a full manifest" in text
    assert "[data] digest is not pinned" in text
    assert "tokenizer_digest is not pinned" not in text  # byte level needs none


def test_init_options_read_back_exactly(tmp_path, capsys):
    out = tmp_path / "sub" / "big.toml"
    argv = ["run", "init", "--out", str(out), "--name", "big", "--preset", "base100m", "--data-source", "hf"]
    argv += ["--data-path", "org/corpus", "--text-field", "content", "--revision", "a" * 40]
    argv += ["--chain", "bittensor", "--netuid", "7"]
    assert run_cli(capsys, *argv)[0] == 0
    expected = RunSpec(
        name="big",
        model=ModelSpec(preset="base100m"),
        data=DataSpec(source="hf", path="org/corpus", text_field="content", revision="a" * 40),
        chain=ChainSpec(kind="bittensor", network="test", netuid=7),
    )
    assert load_run_file(out) == (expected, NodeConfig())
    code, text, _ = run_cli(capsys, "run", "show", str(out))
    assert code == 0 and "bittensor test, netuid 7" in text and "is not a commit" not in text


def test_init_with_a_local_bpe_tokenizer_fills_digest_and_vocab(tmp_path, capsys):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from node.data.tokenizer import load_tokenizer

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["the swarm trains a model together, round after round"] * 50, trainer=trainer)
    path = tmp_path / "tok" / "tokenizer.json"
    path.parent.mkdir()
    path.write_text(tokenizer.to_str())
    loaded = load_tokenizer(str(path))

    out = tmp_path / "run.toml"
    assert run_cli(capsys, "run", "init", "--out", str(out), "--tokenizer", str(path))[0] == 0
    spec, _ = load_run_file(out)
    assert spec.model == ModelSpec(tokenizer=str(path), tokenizer_digest=loaded.digest, vocab_size=loaded.vocab_size)
    assert spec.model.vocab_size != 256

    code, text, _ = run_cli(capsys, "run", "show", str(out))
    assert code == 0 and loaded.digest in text and "[model]" not in text  # pinned, and the files agree

    out.write_text(out.read_text().replace(f"vocab_size = {loaded.vocab_size}", "vocab_size = 300"))
    code, text, _ = run_cli(capsys, "run", "show", str(out))
    assert code == 0 and f"vocab_size is 300, the tokenizer {str(path)!r} has {loaded.vocab_size}" in text


def test_init_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "run.toml"
    out.write_text("mine")
    code, _, err = run_cli(capsys, "run", "init", "--out", str(out))
    assert code == 2 and err.startswith("error: ") and "--force" in err
    assert out.read_text() == "mine"
    assert run_cli(capsys, "run", "init", "--out", str(out), "--force", "--preset", "small")[0] == 0
    assert load_run_file(out)[0].model.preset == "small"


@pytest.mark.parametrize(
    "argv",
    [
        ["--chain", "bittensor"],  # no netuid
        ["--data-source", "files"],  # no path
        ["--tokenizer", "./no/such/tokenizer"],  # a local path that is not there: never a download
    ],
)
def test_init_errors_are_one_line_and_exit_2(tmp_path, capsys, argv):
    out = tmp_path / "run.toml"
    code, _, err = run_cli(capsys, "run", "init", "--out", str(out), *argv)
    assert code == 2 and err.startswith("error: ") and not out.exists()


def test_show_of_a_bad_file_is_an_error(tmp_path, capsys):
    bad = tmp_path / "run.toml"
    bad.write_text("[model]\npresett = 'tiny'\n")
    code, _, err = run_cli(capsys, "run", "show", str(bad))
    assert code == 2 and "unknown keys: presett" in err


def test_every_field_has_a_comment():
    assert set(all_paths()) == set(COMMENTS)


def test_the_commented_template_reads_back_and_comments_every_key():
    spec = RunSpec(
        name="x",
        plan=PlanSpec(rounds=100, inner=LrCurve(shape="wsd", decay_rounds=10), outer=LrCurve(shape="cosine")),
        chain=ChainSpec(kind="dev", path="c.sqlite"),
    )
    node = NodeConfig(bootstrap=("/ip4/1.2.3.4/tcp/1/p2p/Qm",), port=7)
    text = render_commented(spec, node)
    assert parse_run_file(text) == (spec, node)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):  # a key: the line above comments it and names its default
            assert lines[i - 1].startswith("# ") and "Default: " in lines[i - 1], line
        if line.startswith("["):
            assert lines[i - 1].startswith("# "), line
    keys = [line for line in lines if line and not line.startswith(("#", "["))]
    paths = all_paths()
    leaves = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
    assert len(keys) == len(leaves)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_parse_and_show(example, capsys):
    spec, _ = load_run_file(example)
    code, text, err = run_cli(capsys, "run", "show", str(example))
    assert code == 0, err
    assert spec.run_id.hex() in text and spec.model.preset in text
    for f in dataclasses.fields(spec):  # every table of the spec is written out, none left to defaults silently
        if f.name != "name":
            assert f"[{f.name}]" in example.read_text()


def test_the_examples_are_the_runs_the_docs_describe():
    assert {p.parent.name for p in EXAMPLES} == {"demo", "base1b-testnet"}
    demo, _ = load_run_file(ROOT / "examples" / "demo" / "run.toml")
    assert (demo.model.preset, demo.model.tokenizer, demo.data.source, demo.chain.kind) == ("tiny", "byte", "stdlib", "dev")
    assert not Path(demo.chain.path).is_absolute() and demo.schedule.overlap
    big, _ = load_run_file(ROOT / "examples" / "base1b-testnet" / "run.toml")
    assert (big.model.preset, big.data.source, big.data.split) == ("base1b", "hf", "train")
    assert (big.chain.kind, big.chain.network) == ("bittensor", "test")
    assert big.model.tokenizer != "byte" and big.model.vocab_size <= 262144
    assert big.plan.rounds >= 1000 and big.plan.inner.shape in ("cosine", "wsd")
    assert 300 <= big.schedule.round_seconds <= 600 and big.data.page_tokens > big.train.seq_len
