"""node/checkpoint/export.py and `gradswarm export|sample`: a swarm state leaves as a folder transformers loads as it is."""

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from node.checkpoint.export import export_state, model_card, run_tokenizer, vouching_manifest
from node.checkpoint.state import save_checkpoint
from node.cli import main
from node.config import NodeConfig, RunSpec, render_run_file
from node.data.tokenizer import byte_tokenizer
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.model import build_model
from protocol import signing
from protocol.messages import ManifestEntry, RoundManifest
from tests.support import free_port, keypair
from tests.support.corpora import bpe_model, documents


def perturbed_state(spec: RunSpec) -> OuterState:
    model = build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size)
    noise = 0.01 * torch.randn(params.numel(model), generator=torch.Generator().manual_seed(3))
    return OuterState.fresh(params.flatten(model) + noise)


def signed_manifest(spec: RunSpec, state: OuterState, round_: int, signer: str = "Alice") -> RoundManifest:
    kp = keypair(signer)
    m = RoundManifest(
        run_id=spec.run_id,
        round=round_,
        hotkey=kp.ss58_address,
        base_state_hash=b"\1" * 32,
        entries=(ManifestEntry(kp.ss58_address, b"\2" * 32),),
        result_state_hash=state.state_hash(),
    )
    return signing.sign(m, kp)


@pytest.fixture(scope="module")
def bpe_spec(tmp_path_factory) -> RunSpec:
    return RunSpec(model=bpe_model(tmp_path_factory.mktemp("tok"), documents(30), vocab=400))


def write_run(tmp_path, spec: RunSpec, state: OuterState, round_: int, config: NodeConfig | None = None):
    save_checkpoint(tmp_path / "state.safetensors", state, round_)
    (tmp_path / "run.toml").write_text(render_run_file(spec, config or NodeConfig()))
    return tmp_path / "run.toml", tmp_path / "state.safetensors"


def test_the_byte_tokenizer_gives_each_byte_its_value_and_decodes_back():
    text = "héllo\nwörld\x00\x7f"
    tokenizer = byte_tokenizer()
    ids = tokenizer(text)["input_ids"]
    assert ids == list(text.encode()) and tokenizer.decode(ids) == text


def test_an_exported_byte_level_state_loads_in_transformers_with_the_same_weights_and_generates(tmp_path, capsys):
    spec = RunSpec()
    state = perturbed_state(spec)
    run, checkpoint = write_run(tmp_path, spec, state, 7)
    out = tmp_path / "hf"
    args = ["export", "--config", str(run), "--state", str(checkpoint), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert spec.run_id.hex() in card and state.state_hash().hex() in card and "round: 7" in card
    assert "No signed manifest was found" in card  # no peer to ask: the card says so plainly
    assert "no signed manifest" in capsys.readouterr().err

    loaded = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert torch.equal(params.flatten(loaded), state.theta)  # the very weights every node holds
    prompt = tokenizer("def main():", return_tensors="pt")
    generated = loaded.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 5
    assert not (tmp_path / "hf.partial").exists()

    assert main(args) == 2  # the folder exists: export never writes over one


def test_a_bpe_run_exports_its_tokenizer_with_eos_and_pad_and_generates_new_tokens(tmp_path, bpe_spec):
    state = perturbed_state(bpe_spec)
    out = export_state(bpe_spec, state, 4, tmp_path / "hf", progress=False)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert len(tokenizer) == bpe_spec.model.vocab_size and tokenizer.eos_token == "<|endoftext|>"
    eos = tokenizer.eos_token_id
    assert model.config.eos_token_id == eos and model.generation_config.eos_token_id == eos
    assert model.generation_config.pad_token_id == eos and tokenizer.pad_token_id == eos
    assert torch.equal(params.flatten(model), state.theta)
    text = "def f0_1_2(x):\n    return x"
    ids = tokenizer(text, return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == text  # the run's own BPE, not bytes
    assert ids["input_ids"].shape[1] < len(text)
    new = model.generate(**ids, max_new_tokens=6, do_sample=False)[0, ids["input_ids"].shape[1] :]
    assert 1 <= len(new) <= 6 and isinstance(tokenizer.decode(new), str)
    card = (out / "README.md").read_text()
    assert bpe_spec.model.tokenizer_digest in card


def test_the_card_records_the_signed_manifest_that_vouches_for_the_state(tmp_path, bpe_spec):
    state = perturbed_state(bpe_spec)
    manifest = signed_manifest(bpe_spec, state, 8)
    out = export_state(bpe_spec, state, 9, tmp_path / "hf", manifest, progress=False)
    card = (out / "README.md").read_text()
    for needle in (bpe_spec.run_id.hex(), "round: 9", state.state_hash().hex(), manifest.hotkey, manifest.signature.hex()):
        assert needle in card
    assert "No signed manifest" not in card and "signing.verify" in card  # and how to check it


def test_a_manifest_that_does_not_vouch_is_never_written_into_the_card(tmp_path, bpe_spec):
    state = perturbed_state(bpe_spec)
    good = signed_manifest(bpe_spec, state, 8)
    forged = dataclasses.replace(good, hotkey=keypair("Bob").ss58_address)  # Alice's signature, Bob's name
    other = signed_manifest(bpe_spec, OuterState.fresh(state.theta + 1), 8)  # signed, for another state
    foreign = signing.sign(dataclasses.replace(good, run_id=b"\5" * 32, signature=b""), keypair("Alice"))
    h = state.state_hash()
    assert vouching_manifest([forged, other, foreign], bpe_spec.run_id, h) is None
    assert vouching_manifest([forged, other, good], bpe_spec.run_id, h) == good
    with pytest.raises(ValueError, match="does not vouch"):
        export_state(bpe_spec, state, 9, tmp_path / "hf", forged, progress=False)
    assert not (tmp_path / "hf").exists() and not (tmp_path / "hf.partial").exists()
    tokenizer = run_tokenizer(bpe_spec)
    assert "No signed manifest was found" in model_card(bpe_spec, 9, h, None, tokenizer)


def test_an_interrupted_export_leaves_no_folder_and_the_next_one_starts_over(tmp_path, bpe_spec, monkeypatch):
    state = perturbed_state(bpe_spec)
    out = tmp_path / "hf"
    (tmp_path / "hf.partial").mkdir()
    (tmp_path / "hf.partial" / "stale.bin").write_bytes(b"left by a killed export")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("node.checkpoint.export.model_card", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_state(bpe_spec, state, 1, out, progress=False)
    assert not out.exists() and not (tmp_path / "hf.partial").exists()
    monkeypatch.undo()
    (tmp_path / "hf.partial").mkdir()
    (tmp_path / "hf.partial" / "stale.bin").write_bytes(b"left by a killed export")
    export_state(bpe_spec, state, 1, out, progress=False)
    assert not (out / "stale.bin").exists() and (out / "model.safetensors").exists()


def test_a_state_of_another_model_size_is_refused(tmp_path):
    run, checkpoint = write_run(tmp_path, RunSpec(), OuterState.fresh(torch.zeros(10)), 1)
    args = ["export", "--config", str(run), "--state", str(checkpoint), "--out", str(tmp_path / "x")]
    assert main(args) == 2 and not (tmp_path / "x").exists()


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run.toml").write_text(render_run_file(RunSpec(), NodeConfig()))
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", str(tmp_path / "state.safetensors"), "--out", str(tmp_path / "x")]
    assert main(args) == 2 and "no checkpoint" in capsys.readouterr().err


def test_a_state_hash_with_no_peer_to_ask_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run.toml").write_text(render_run_file(RunSpec(), NodeConfig()))
    wanted = "ab" * 32
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", wanted, "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no peer to ask" in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_a_state_hash_no_reachable_peer_holds_is_a_clear_error_naming_it(tmp_path, capsys):
    (tmp_path / "run.toml").write_text(render_run_file(RunSpec(), NodeConfig()))
    wanted = "cd" * 32
    nobody = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
    args = ["export", "--config", str(tmp_path / "run.toml"), "--state", wanted, "--peer", nobody, "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and not (tmp_path / "x").exists()
    assert main([*args[:-4], "--peer", "/ip4/127.0.0.1/tcp/1", "--out", str(tmp_path / "x")]) == 2
    assert "/p2p/<peer id>" in capsys.readouterr().err


def test_sample_prints_the_prompt_and_its_continuation(tmp_path, bpe_spec, capsys):
    run, checkpoint = write_run(tmp_path, bpe_spec, perturbed_state(bpe_spec), 3)
    prompt = "def f0_1"
    assert main(["sample", "--config", str(run), "--state", str(checkpoint), "--prompt", prompt, "--tokens", "5"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(prompt) and len(printed.rstrip("\n")) > len(prompt)
    args = ["sample", "--config", str(run), "--state", str(checkpoint), "--prompt", prompt, "--tokens", "5", "--temperature", "0.8"]
    assert main(args) == 0 and capsys.readouterr().out.startswith(prompt)
    assert main([*args[:-2], "--temperature", "-1"]) == 2


def test_a_node_checkpoint_keeps_the_manifest_that_vouches_for_it_and_export_reads_it(tmp_path, capsys):
    """finish.save_state writes the signed manifest beside θ; exporting that checkpoint offline carries its signature."""
    from node.round.finish import LocalFiles, save_state
    from node.round.states import StateBook

    spec = RunSpec()
    state = perturbed_state(spec)
    files = LocalFiles(tmp_path / "node")
    files.data_dir.mkdir()
    manifest = signed_manifest(spec, state, 6)
    save_state(files, StateBook(state, 7), manifest)
    run = tmp_path / "run.toml"
    run.write_text(render_run_file(spec, NodeConfig()))
    assert main(["export", "--config", str(run), "--state", str(files.state), "--out", str(tmp_path / "hf"), "--no-progress"]) == 0
    assert "vouched for by " + manifest.hotkey in capsys.readouterr().out
    assert manifest.signature.hex() in (tmp_path / "hf" / "README.md").read_text()
    # a later checkpoint whose manifest does not result in it keeps no manifest: nothing stale vouches for it
    save_state(files, StateBook(perturbed_state(RunSpec(model=dataclasses.replace(spec.model, seed=1))), 8), manifest)
    assert not files.state.with_suffix(".manifest").exists()
