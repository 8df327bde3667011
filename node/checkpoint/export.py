"""Export: a swarm state θ as a Hugging Face folder that `transformers` loads as it is.

What leaves the swarm must be usable without gradswarm: `config.json` and
`model.safetensors` (via `save_pretrained`), `generation_config.json`, the
tokenizer files, and a model card naming the run id, the round and the state
hash that vouch for the weights. The folder is written under a temporary name
and renamed when complete, so an interrupted export never leaves a folder that
looks whole.

The byte-level runs' tokenizer is built with `tokenizers`: a BPE model with no
merges over GPT-2's byte-to-character table, so that each byte's id is the byte's
value, as in the node's byte-level corpus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from node.config import RunSpec
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.model import build_model

BYTE_VOCAB = 256


def byte_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = bytes_to_unicode()
    tokenizer = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(BYTE_VOCAB)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def model_card(spec: RunSpec, round_: int, state_hash: bytes) -> str:
    return (
        f"# {spec.name}: a gradswarm state\n\n"
        "Trained by a gradswarm swarm: every honest node of the run computed these exact weights.\n\n"
        f"- run id: `{spec.run_id.hex()}`\n"
        f"- the state of round: {round_}\n"
        f"- state hash (sha256 over θ and the outer momentum, `OuterState.state_hash`): `{state_hash.hex()}`\n"
        f"- preset: `{spec.model.preset}`, tokenizer: byte-level ({BYTE_VOCAB} ids)\n\n"
        "A manifest of the run whose `result_state_hash` is this hash, signed by a validator, vouches for it.\n"
    )


def export_state(spec: RunSpec, state: OuterState, round_: int, out: Path) -> Path:
    """Write `out` (which must not exist yet) as a Hugging Face model folder of `state`."""
    if out.exists():
        raise ValueError(f"{out} exists: export writes a new folder, never over one")
    model = build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size)
    if params.numel(model) != state.theta.numel():
        raise ValueError(f"the state has {state.theta.numel()} values, the {spec.model.preset} preset {params.numel(model)}")
    params.load_flat(model, state.theta)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted export left
    model.save_pretrained(partial, safe_serialization=True)
    model.generation_config.save_pretrained(partial)
    byte_tokenizer().save_pretrained(partial)
    (partial / "README.md").write_text(model_card(spec, round_, state.state_hash()), encoding="utf-8")
    partial.rename(out)
    return out
