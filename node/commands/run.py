"""`gradswarm run init|show`: the run owner's workflow, from options to a checked run.toml.

``init`` writes a commented run.toml (:mod:`node.commands.template`) from a
few options, filling the tokenizer's digest and vocabulary when one is named;
``show`` reads one and prints what it implies: the run id, the model's size,
the bytes a contribution and a round cost, the tokens a round trains, the
schedule, the learning-rate plan and the chain, with a warning for every pin
that is missing. ``show`` never downloads: a hub tokenizer is not checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.commands.template import render_commented
from node.config import ChainSpec, ConfigError, DataSpec, ModelSpec, NodeConfig, RunSpec, load_run_file, parse_run_file
from node.fsutil import atomic_write

PRESET_NAMES = ("tiny", "small", "base100m", "base1b")
DEFAULT_DEV_CHAIN = "chain.sqlite"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `run init` and `run show` on the `gradswarm` sub-parsers."""
    actions = sub.add_parser("run", help="write and inspect a run spec (run.toml)").add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write a commented run.toml (never overwrites one without --force)")
    init.add_argument("--out", default="run.toml", help="the file to write (default run.toml)")
    init.add_argument("--name", default=RunSpec.name, help=f"the run's name (default {RunSpec.name})")
    init.add_argument("--preset", choices=PRESET_NAMES, default=ModelSpec.preset, help="model preset (default tiny)")
    init.add_argument("--tokenizer", default="byte", help="byte, or a Hugging Face tokenizer (folder, tokenizer.json or hub name)")
    init.add_argument("--data-source", choices=("stdlib", "files", "hf"), default="stdlib", help="where documents come from")
    init.add_argument("--data-path", default="", help="files: a glob; hf: a dataset name or folder")
    init.add_argument("--text-field", default=DataSpec.text_field, help="the documents' text column (default text)")
    init.add_argument("--revision", default="", help="hf: the dataset commit to pin")
    init.add_argument("--chain", choices=("dev", "bittensor"), default="dev", help="chain kind (default dev)")
    init.add_argument("--network", default="", help="bittensor: finney, test, local or a ws:// url (default test)")
    init.add_argument("--netuid", type=int, default=None, help="bittensor: the subnet (required with --chain bittensor)")
    init.add_argument("--dev-chain-path", default=DEFAULT_DEV_CHAIN, help=f"dev: the chain file (default {DEFAULT_DEV_CHAIN})")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.set_defaults(func=cmd_init)
    show = actions.add_parser("show", help="print what a run.toml implies, and what it leaves unpinned")
    show.add_argument("config", help="the run.toml")
    show.set_defaults(func=cmd_show)


def spec_from_options(args: argparse.Namespace) -> tuple[RunSpec, NodeConfig]:
    """The spec and node config `run init` writes for ``args`` (loads a named tokenizer for its digest)."""
    if args.tokenizer == "byte":
        model = ModelSpec(preset=args.preset)
    else:
        from node.data.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
        model = ModelSpec(preset=args.preset, tokenizer=args.tokenizer, tokenizer_digest=tokenizer.digest, vocab_size=tokenizer.vocab_size)
    data = DataSpec(source=args.data_source, path=args.data_path, text_field=args.text_field, revision=args.revision)
    if args.chain == "dev":
        chain = ChainSpec(kind="dev", path=args.dev_chain_path)
    else:
        if args.netuid is None:
            raise ConfigError("--chain bittensor needs --netuid N (the subnet)")
        chain = ChainSpec(kind="bittensor", network=args.network or "test", netuid=args.netuid)
    return RunSpec(name=args.name, model=model, data=data, chain=chain), NodeConfig()


def cmd_init(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (pass --force to replace it)", file=sys.stderr)
        return 2
    spec, node = spec_from_options(args)
    text = render_commented(spec, node)
    if parse_run_file(text) != (spec, node):  # the template and the spec disagree: a bug, never a file
        raise ConfigError("the commented template does not read back to the spec it was written from")
    atomic_write(out, text.encode())
    print(f"wrote {out}: run {spec.name!r}, id {spec.run_id.hex()}")
    print(f"next: edit it, check it with `gradswarm run show {out}`, then `gradswarm node run --config {out}`")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    spec, node = load_run_file(Path(args.config))
    lines, warnings = describe(spec, node)
    print("\n".join(lines))
    if warnings:
        print("warnings:")
        print("\n".join(f"  - {w}" for w in warnings))
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError


def param_count(spec: RunSpec) -> int:
    """The model's parameter count with the run's vocabulary, built on the meta device (no memory, no init)."""
    import torch
    from transformers import LlamaForCausalLM

    from node.trainer import params
    from node.trainer.model import llama_config

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(spec.model.preset, vocab_size=spec.model.vocab_size))
    return params.numel(model)


def describe(spec: RunSpec, node: NodeConfig) -> tuple[list[str], list[str]]:
    """The lines `run show` prints, and its warnings."""
    from protocol.compression import get_codec

    numel = param_count(spec)
    m, d, t, c, s = spec.model, spec.data, spec.train, spec.codec, spec.schedule
    g = spec.outer.gather_size
    bound = get_codec(c.codec_spec()).max_payload_bytes(numel)
    per_step = t.batch_size * t.seq_len
    per_round = t.inner_steps * per_step
    lines = [
        f"run        {spec.name}",
        f"run id     {spec.run_id.hex()}",
        f"model      {m.preset}, {numel:,} parameters with vocab {m.vocab_size}, seed {m.seed}",
        f"tokenizer  {m.tokenizer}, vocab {m.vocab_size}, digest {m.tokenizer_digest or ('(none: byte level)' if m.tokenizer == 'byte' else '(not pinned)')}",
        f"data       {_data_line(d)}",
        f"           pages of {d.page_tokens:,} tokens, {d.pages_per_round} per node per round "
        f"({d.page_tokens * d.pages_per_round:,} tokens), {d.eval_pages} held out; digest {d.digest or '(not pinned)'}",
        f"codec      {c.name} (chunk {c.chunk}, k {c.k}, {c.value_bits}-bit values, scale group {c.scale_group}), "
        f"error feedback β {c.error_feedback_beta}",
        f"           ≤ {_size(bound)} per contribution (its payload bound; dense fp32 is {_size(4 * numel)})",
        f"           ≤ {_size(g * bound)} per round: a full manifest of G = {g} contributions",
        f"           each node serves its payload to every peer that fetches it and fetches every peer's: "
        f"≤ {_size((g - 1) * bound)} each way per round in a swarm of G nodes",
        f"tokens     {t.inner_steps} steps × {t.batch_size} × {t.seq_len} = {per_round:,} per node per round, "
        f"{g * per_round:,} for a full manifest (G = {g})",
        f"train      inner AdamW lr {t.lr:g}, weight decay {t.weight_decay:g}, warmup {t.warmup_steps} steps; "
        f"outer lr {spec.outer.lr:g}, momentum {spec.outer.momentum:g}",
        f"schedule   rounds of {s.round_seconds:g} s, {'overlapped' if s.overlap else 'sequential'}, from block {s.start_block}",
        *_plan_lines(spec),
        f"chain      {_chain_line(spec.chain)}",
        f"node       data in {node.data_dir}, wallet {node.wallet}/{node.hotkey}, device {node.device}, "
        f"listening on {node.host}:{node.port}, {len(node.bootstrap)} bootstrap address(es)",
    ]
    return lines, _warnings(spec, per_round)


def _data_line(d: DataSpec) -> str:
    if d.source == "stdlib":
        text = "stdlib: the running Python's standard library"
    elif d.source == "files":
        text = f"files {d.path} (field {d.text_field!r})"
    else:
        text = f"hf {d.path}, split {d.split}, revision {d.revision or '(latest)'} (field {d.text_field!r})"
    return text + (f", first {d.max_documents:,} documents" if d.max_documents else "")


def _plan_lines(spec: RunSpec) -> list[str]:
    plan = spec.plan
    if plan.rounds == 0:
        return [f"plan       none: inner lr {spec.train.lr:g} and outer lr {spec.outer.lr:g} throughout"]
    lines = [f"plan       {plan.rounds} rounds"]
    for label, curve, peak in (("inner", plan.inner, spec.train.lr), ("outer", plan.outer, spec.outer.lr)):
        end = peak * curve.factor(plan.rounds - 1, plan.rounds)
        decay = f", decay {curve.decay_rounds} rounds" if curve.shape == "wsd" else ""
        lines.append(
            f"           {label} lr {peak:g} peak → {end:g} at round {plan.rounds - 1} ({curve.shape}, warmup {curve.warmup_rounds} rounds{decay})"
        )
    return lines


def _chain_line(chain: ChainSpec) -> str:
    if chain.kind == "dev":
        return f"dev, file {chain.path or '(none: set [chain] path)'}"
    return f"bittensor {chain.network}, netuid {chain.netuid}"


def _warnings(spec: RunSpec, per_round: int) -> list[str]:
    m, d, t = spec.model, spec.data, spec.train
    warnings = []
    if m.tokenizer != "byte" and not m.tokenizer_digest:
        warnings.append(
            "[model] tokenizer_digest is not pinned: nodes refuse to start; "
            f"`gradswarm run init --tokenizer {m.tokenizer}` fills it (and a node prints the digest to pin)"
        )
    warnings += _tokenizer_warnings(m)
    if not d.digest:
        warnings.append("[data] digest is not pinned: nodes whose corpus builds differently would not notice; pin what a node prints")
    if d.source == "hf" and not _is_commit(d.revision):
        warnings.append(f"[data] revision {d.revision or '(latest)'!r} is not a commit: the dataset can change under the run")
    if d.page_tokens < t.seq_len + 1:
        warnings.append(f"[data] page_tokens {d.page_tokens} is shorter than a training window (seq_len {t.seq_len} + 1)")
    pages = d.page_tokens * d.pages_per_round
    if per_round > 4 * pages:
        warnings.append(
            f"[data] a node draws {per_round:,} tokens per round from {pages:,} tokens of pages (~{per_round / pages:.0f}x each)"
        )
    if spec.chain.kind == "dev" and not spec.chain.path:
        warnings.append("[chain] kind is dev but path is empty")
    return warnings


def _tokenizer_warnings(m: ModelSpec) -> list[str]:
    """A byte or local tokenizer is loaded and compared with the spec; a hub name is not (show never downloads)."""
    if m.tokenizer == "byte":
        return [] if m.vocab_size == 256 else [f"[model] vocab_size is {m.vocab_size}, the byte tokenizer has 256"]
    if not Path(m.tokenizer).expanduser().exists():
        return [f"[model] tokenizer {m.tokenizer!r} is not a local path: its digest and vocabulary are not checked here"]
    from node.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(m.tokenizer)
    found = []
    if tokenizer.vocab_size != m.vocab_size:
        found.append(f"[model] vocab_size is {m.vocab_size}, the tokenizer {m.tokenizer!r} has {tokenizer.vocab_size}")
    if m.tokenizer_digest and tokenizer.digest != m.tokenizer_digest:
        found.append(f"[model] tokenizer_digest differs from the files at {m.tokenizer!r} (they hash to {tokenizer.digest})")
    return found


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(ch in "0123456789abcdef" for ch in revision.lower())
