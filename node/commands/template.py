"""The commented run.toml that `gradswarm run init` writes.

The keys, their order and their defaults come from the dataclasses of
:mod:`node.config` (``dataclasses.fields``), so the template cannot drift
from the spec; what a key means lives in :data:`COMMENTS`, keyed by
``"table.key"`` (a table's own line by its name), and a test asserts every
field has one. Each comment ends with the field's default, read from the
dataclass.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from node.config import NodeConfig, RunSpec, toml_value

_CURVE = {
    "shape": "constant, cosine (half a cosine from the peak down to min_ratio at the last round) or wsd (flat, then linear decay)",
    "warmup_rounds": "rounds of linear warmup at the start of the plan; a few percent of plan.rounds",
    "min_ratio": "the factor on the peak lr at the last planned round (and after it)",
    "decay_rounds": "wsd only: rounds of linear decay at the end of the plan (e.g. 10-20% of plan.rounds)",
}

COMMENTS: dict[str, str] = {
    "name": "the run's name; part of the run id (every participant must use the same spec)",
    # [model]
    "model": "the model every node trains: a preset of node/trainer/model.py and the tokenizer",
    "model.preset": "tiny (1.1M, CPU demo), small (21M), base100m (104M, one GPU) or base1b (0.97B, H100-class GPUs)",
    "model.seed": "seeds the initial weights; change it to start a different run of the same model",
    "model.tokenizer": '"byte", or a Hugging Face tokenizer: a local folder, a tokenizer.json or a hub name',
    "model.tokenizer_digest": "sha256 of the tokenizer's files; required unless byte: `gradswarm run init --tokenizer NAME` fills it",
    "model.vocab_size": "the tokenizer's vocabulary (byte: 256); sets the embeddings; at most the preset's max_vocab",
    # [data]
    "data": "the corpus: where the documents come from and how they become pages of tokens",
    "data.source": "stdlib (the running Python's standard library: nothing to download), files (local) or hf (a Hugging Face dataset)",
    "data.path": "files: a glob of .jsonl/.parquet/.arrow/.txt files; hf: a dataset name or folder; unused for stdlib",
    "data.text_field": "the column or json key that holds each document's text",
    "data.revision": "hf: a commit, tag or branch of the dataset; pin a commit for a real run",
    "data.split": "hf: the split to read",
    "data.max_documents": "read at most this many documents (0: all); bounds the corpus every node builds and caches",
    "data.digest": "pins the built corpus; empty: whatever the source builds to; set it to the digest a node prints",
    "data.page_tokens": "tokens per page, the unit of assignment; must exceed train.seq_len",
    "data.eval_pages": "held-out pages nobody trains on, for eval loss",
    "data.pages_per_round": "pages assigned to each node per round; page_tokens × this ≈ the tokens a node trains per round",
    # [train]
    "train": "the inner optimizer (AdamW) each node runs locally in every round",
    "train.inner_steps": "H: AdamW steps per round; size it so they fit the train window (95% of round_seconds)",
    "train.batch_size": "sequences per step; as many as fit the GPU",
    "train.seq_len": "tokens per sequence; at most the preset's context (tiny 128, small 256, base100m 1024, base1b 2048)",
    "train.lr": "the inner AdamW's peak learning rate (the plan scales it per round)",
    "train.weight_decay": "the inner AdamW's weight decay",
    "train.warmup_steps": "linear warmup of the inner AdamW over its first steps on a node",
    # [outer]
    "outer": "the outer step that applies the round's compressed pseudo-gradients to the shared weights",
    "outer.lr": "the outer step's learning rate (3 with error feedback as the momentum; docs/DESIGN.md)",
    "outer.momentum": "outer SGD momentum; 0 with the error-feedback codecs",
    "outer.nesterov": "Nesterov momentum (only matters with momentum > 0)",
    "outer.gather_size": "G: most contributions a manifest names per round; upper bound of the useful swarm per round",
    "outer.probation_slots": "of those G, at most this many for hotkeys nobody has verified yet",
    # [codec]
    "codec": "the pseudo-gradient codec (protocol/compression); `gradswarm run show` prints the bytes it implies",
    "codec.name": "sparseloco-ec (default, ~210x smaller than fp32), sparseloco, topk, demo-dct or dense-fp16",
    "codec.chunk": "values per chunk the top-k is taken over",
    "codec.k": "values kept per chunk; more: better updates, bigger payloads",
    "codec.value_bits": "bits per kept value (1 or 2; low-bit codecs only)",
    "codec.scale_group": "chunks that share one pair of levels (low-bit codecs only)",
    "codec.error_feedback_beta": "decay of the error-feedback residual (what compression left out so far), in [0, 1]",
    # [chain]
    "chain": "where identities, stake and weights live: an embedded dev chain, or a Bittensor subnet",
    "chain.kind": "dev (a sqlite file, `gradswarm devchain init`) or bittensor",
    "chain.path": "dev: the chain file, relative to where the node runs; not part of the run id",
    "chain.network": "bittensor: finney, test, local or a ws:// / wss:// endpoint; not part of the run id",
    "chain.netuid": "bittensor: the subnet's netuid (>= 1)",
    # [schedule]
    "schedule": "the round clock every node derives from the chain's blocks",
    "schedule.start_block": "the block round 0 starts at; set it a little ahead of when the nodes come up",
    "schedule.round_seconds": "L: seconds per round; long enough for H steps plus fetching G payloads",
    "schedule.overlap": "true: round r's exchange runs while round r+1 trains; false: train half, exchange half",
    # [plan]
    "plan": "the learning-rate plan: a factor per round on train.lr (inner) and outer.lr (outer), protocol/plan.py",
    "plan.rounds": "the planned number of rounds (0: no plan, every factor is 1); past it the factor stays at min_ratio",
    "plan.inner": "the inner lr's curve",
    "plan.outer": "the outer lr's curve",
    **{f"plan.inner.{k}": v for k, v in _CURVE.items()},
    **{f"plan.outer.{k}": v for k, v in _CURVE.items()},
    # [node]
    "node": "this operator's machine only: never part of the run id, and each node has its own",
    "node.data_dir": "checkpoints, payloads, audit records and round reports",
    "node.wallet": "the bittensor wallet name (folder under wallet_root)",
    "node.hotkey": "the hotkey within the wallet that signs everything this node says",
    "node.wallet_root": "empty: bittensor's default ~/.bittensor/wallets",
    "node.host": "address to listen on; 0.0.0.0 on a public host",
    "node.port": "port to listen on (0: any free one; fix it on a public host)",
    "node.bootstrap": "multiaddrs of bootstrap nodes, ending in /p2p/<peer id>",
    "node.device": "auto, cpu, cuda or cuda:N",
    "node.torch_threads": "CPU threads torch uses (0: torch's default)",
    "node.evaluate": "measure held-out loss after every round (costs a forward pass)",
    "node.checkpoint_every": "rounds between local checkpoints (a restart resumes from the last one)",
    "node.verify_samples": "contributions this node checks per round",
    "node.audit_rounds": "rounds of verification records kept for auditors",
    "node.weights_every": "rounds between weight updates on chain (validators only)",
    "node.parallel": "under `node run --nproc N`: auto (FSDP2 for large presets, else DDP), ddp or fsdp",
    "node.activation_checkpointing": "auto (recompute activations on CUDA only), on or off",
    "node.http": "HOST:PORT of the status page, /status, /metrics and /healthz (empty: off); `gradswarm node status` reads it",
    "node.http_public": "allow http on an address that is not loopback (the page is read-only, but anyone who reaches it reads it)",
    "node.corpus_cache": "where the built corpus is cached (empty: <data_dir>/corpus)",
}

HEADER = """\
# A gradswarm run: everything but [node] is the run spec, which every participant
# must share byte for byte in meaning (its canonical form hashes to the run id).
# [node] is this operator's own. Check it with `gradswarm run show FILE`, then
# `gradswarm node run --config FILE`. Unknown or mistyped keys are errors.
"""


def field_paths(cls: type = RunSpec, prefix: str = "") -> list[str]:
    """Every ``table.key`` (and every table) of ``cls``, nested tables included."""
    paths, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        paths.append(path)
        if dataclasses.is_dataclass(hints[f.name]):
            paths += field_paths(hints[f.name], path + ".")
    return paths


def all_paths() -> list[str]:
    """The paths of the spec and of ``[node]``."""
    return [*field_paths(RunSpec), "node", *field_paths(NodeConfig, "node.")]


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _table(name: str, value: Any) -> list[str]:
    lines = ["", f"# {COMMENTS[name]}", f"[{name}]"]
    nested = []
    for f in dataclasses.fields(value):
        path, current = f"{name}.{f.name}", getattr(value, f.name)
        if dataclasses.is_dataclass(current):
            nested.append((path, current))
            continue
        lines += [f"# {COMMENTS[path]}. Default: {toml_value(_default(f))}", f"{f.name} = {toml_value(current)}"]
    for path, current in nested:
        lines += _table(path, current)
    return lines


def render_commented(spec: RunSpec, node: NodeConfig) -> str:
    """A run.toml with a comment on every table and key; `parse_run_file` reads it back to ``(spec, node)``."""
    name_field = next(f for f in dataclasses.fields(RunSpec) if f.name == "name")
    lines = [HEADER, f"# {COMMENTS['name']}. Default: {toml_value(_default(name_field))}", f"name = {toml_value(spec.name)}"]
    for f in dataclasses.fields(spec):
        if f.name != "name":
            lines += _table(f.name, getattr(spec, f.name))
    lines += _table("node", node)
    return "\n".join(lines) + "\n"
