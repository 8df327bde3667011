"""node/checkpoint/export.py: a swarm state leaves as a folder transformers loads as it is."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from node.checkpoint.export import byte_tokenizer
from node.checkpoint.state import save_checkpoint
from node.cli import main
from node.config import NodeConfig, RunSpec, render_run_file
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.model import build_model


def test_the_byte_tokenizer_gives_each_byte_its_value_and_decodes_back():
    text = "héllo\nwörld\x00\x7f"
    tokenizer = byte_tokenizer()
    ids = tokenizer(text)["input_ids"]
    assert ids == list(text.encode()) and tokenizer.decode(ids) == text


def test_an_exported_state_loads_in_transformers_with_the_same_weights_and_generates(tmp_path):
    spec = RunSpec()
    model = build_model(spec.model.preset, spec.model.seed)
    theta = params.flatten(model) + 0.01 * torch.randn(params.numel(model), generator=torch.Generator().manual_seed(3))
    state = OuterState.fresh(theta)
    save_checkpoint(tmp_path / "state.safetensors", state, 7)
    (tmp_path / "run.toml").write_text(render_run_file(spec, NodeConfig()))
    out = tmp_path / "hf"
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", str(tmp_path / "state.safetensors"), "--out", str(out)]
    assert main(args) == 0
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert spec.run_id.hex() in card and state.state_hash().hex() in card and "round: 7" in card

    loaded = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert torch.equal(params.flatten(loaded), theta)  # the very weights every node holds
    prompt = tokenizer("def main():", return_tensors="pt")
    generated = loaded.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 5
    assert not (tmp_path / "hf.partial").exists()

    assert main(args) == 2  # the folder exists: export never writes over one


def test_a_state_of_another_model_size_is_refused(tmp_path):
    spec = RunSpec()
    save_checkpoint(tmp_path / "state.safetensors", OuterState.fresh(torch.zeros(10)), 1)
    (tmp_path / "run.toml").write_text(render_run_file(spec, NodeConfig()))
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", str(tmp_path / "state.safetensors"), "--out", str(tmp_path / "x")]
    assert main(args) == 2 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("missing", ["state.safetensors"])
def test_a_missing_checkpoint_is_a_clear_error(tmp_path, missing, capsys):
    (tmp_path / "run.toml").write_text(render_run_file(RunSpec(), NodeConfig()))
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", str(tmp_path / missing), "--out", str(tmp_path / "x")]
    assert main(args) == 2 and "no checkpoint" in capsys.readouterr().err
