"""Export: a swarm state θ as a Hugging Face folder that `transformers` loads as it is.

What leaves the swarm must be usable without gradswarm: `config.json` and
`model.safetensors` (via `save_pretrained`), `generation_config.json`, the run's
tokenizer (node/data/tokenizer.py, pinned by its digest), and a model card
naming the run id, the round, the state hash and the signed manifest whose
result is this state, when one was found. The end-of-text token is set in the
tokenizer, the config and the generation config (pad = eos), so `generate`
stops at it and does not warn.

The folder is written as ``DIR.partial``, its files flushed to disk, and
renamed to ``DIR`` only when complete: an interrupted export leaves no folder
at ``DIR`` (the partial one is removed, or discarded by the next attempt,
which starts over).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm
from transformers import LlamaForCausalLM

from node.config import RunSpec
from node.data.tokenizer import BYTE, TextTokenizer, open_tokenizer
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.model import build_model
from protocol import signing
from protocol.messages import RoundManifest
from protocol.wire import ProtocolError

EXPORT_STEPS = ("model weights", "generation config", "tokenizer", "model card", "flush")


def vouching_manifest(candidates: Iterable[RoundManifest], run_id: bytes, state_hash: bytes) -> RoundManifest | None:
    """The first manifest of `candidates` that is signed by its hotkey for this run and results in `state_hash`."""
    for manifest in candidates:
        if manifest.result_state_hash != state_hash:
            continue
        try:
            signing.verify(manifest, run_id)
        except ProtocolError:
            continue
        return manifest
    return None


def run_tokenizer(spec: RunSpec) -> TextTokenizer:
    m = spec.model
    return open_tokenizer(m.tokenizer, m.tokenizer_digest, m.vocab_size)


def load_model(spec: RunSpec, state: OuterState, tokenizer: TextTokenizer) -> LlamaForCausalLM:
    """The run's model holding θ of `state`, configured to generate with the run's tokenizer."""
    model = build_model(spec.model.preset, spec.model.seed, vocab_size=spec.model.vocab_size)
    if params.numel(model) != state.theta.numel():
        raise ValueError(f"the state has {state.theta.numel()} values, the {spec.model.preset} preset {params.numel(model)}")
    params.load_flat(model, state.theta)
    model.config.use_cache = True  # the swarm trains without the KV cache; generation wants it
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_id
        config.pad_token_id = tokenizer.eos_id if tokenizer.eos_id is not None else 0
        config.bos_token_id = None
    model.eval()
    return model


def _verify_howto(spec: RunSpec) -> str:
    return (
        "## Verifying\n\n"
        "1. `sha256` over θ and the outer momentum as gradswarm hashes them (`OuterState.state_hash`, "
        "`node/outer/optimizer.py`) must give the state hash above: fetch the state by hash from any node "
        f"(`gradswarm export --config run.toml --state <hash> --peer <node multiaddr>`) and compare.\n"
        "2. The manifest's signature is sr25519 by the signer's hotkey over "
        '`b"gradswarm/sig/v1\\x00" + run_id + b"round_manifest\\x00" + wire(manifest without signature)` '
        "(`protocol/signing.py`); `protocol.signing.verify(manifest, run_id)` checks it.\n"
        f"3. On chain, the signer must hold a validator permit on the run's subnet (`[chain]` of run `{spec.run_id.hex()[:16]}…`).\n"
    )


def model_card(spec: RunSpec, round_: int, state_hash: bytes, manifest: RoundManifest | None, tokenizer: TextTokenizer) -> str:
    tok = (
        "byte-level (256 ids)"
        if tokenizer.name == BYTE
        else f"`{tokenizer.name}` ({tokenizer.vocab_size} ids, digest `{tokenizer.digest}`)"
    )
    lines = [
        f"# {spec.name}: a gradswarm state\n",
        "Trained by a gradswarm swarm: every honest node of the run computed these exact weights.\n",
        f"- run id: `{spec.run_id.hex()}`",
        f"- the state of round: {round_}",
        f"- state hash (sha256 over θ and the outer momentum, `OuterState.state_hash`): `{state_hash.hex()}`",
        f"- preset: `{spec.model.preset}`, tokenizer: {tok}\n",
        "## Signed manifest\n",
    ]
    if manifest is None:
        lines.append(
            "**No signed manifest was found for this state**: nothing here shows that a validator of the run "
            "vouched for these weights. Only the state hash above identifies them.\n"
        )
    else:
        lines += [
            f"The manifest of round {manifest.round}, whose `result_state_hash` is this state's hash, vouches for the weights "
            "(its signature was checked when this folder was written):\n",
            f"- signer hotkey: `{manifest.hotkey}`",
            f"- base state hash: `{manifest.base_state_hash.hex()}`",
            f"- contributions: {len(manifest.entries)}",
            f"- signature (sr25519, hex): `{manifest.signature.hex()}`\n",
        ]
    return "\n".join(lines) + "\n" + _verify_howto(spec)


def _flush(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def export_state(
    spec: RunSpec, state: OuterState, round_: int, out: Path, manifest: RoundManifest | None = None, *, progress: bool = True
) -> Path:
    """Write `out` (which must not exist yet) as a Hugging Face model folder of `state`.

    `manifest` goes into the card only if it is signed for this run and results in this state.
    """
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists: export writes a new folder, never over one")
    state_hash = state.state_hash()
    if manifest is not None and vouching_manifest([manifest], spec.run_id, state_hash) is None:
        raise ValueError(f"the manifest of round {manifest.round} by {manifest.hotkey} does not vouch for state {state_hash.hex()}")
    tokenizer = run_tokenizer(spec)
    model = load_model(spec, state, tokenizer)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted export left: started over
    bar = tqdm(EXPORT_STEPS, desc=f"export to {out.name}", unit="step", disable=not progress)
    try:
        for step in bar:
            bar.set_postfix_str(step)
            if step == "model weights":
                model.save_pretrained(partial, safe_serialization=True)
            elif step == "generation config":
                model.generation_config.save_pretrained(partial)
            elif step == "tokenizer":
                hf = tokenizer.hf
                if tokenizer.eos_id is not None:
                    hf.pad_token = hf.eos_token
                hf.save_pretrained(partial)
            elif step == "model card":
                (partial / "README.md").write_text(model_card(spec, round_, state_hash, manifest, tokenizer), encoding="utf-8")
            else:
                _flush(partial)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        bar.close()
    return out
