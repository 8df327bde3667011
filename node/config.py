"""Run specs and node configs, loaded strictly from TOML.

A run spec is what every participant of a run must agree on; its canonical
JSON hashes to the `run_id` that every signed message carries. A node config
is what one operator chooses for their own machine (keys, ports, folders) and
never changes the run. One `run.toml` holds both: `[node]` is the node config,
every other table is the spec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.data.spec import DataSpec
from protocol.plan import PlanSpec

MAX_CONFIG_BYTES = 1 << 20
INT_RANGE = range(-(1 << 63), 1 << 63)  # TOML's integers; tomllib takes any size


class ConfigError(ValueError):
    """A config file that is missing, malformed, or names unknown or mistyped keys."""


@dataclass(frozen=True)
class ModelSpec:
    preset: str = "tiny"
    seed: int = 0
    # "byte" (one id per byte), or a Hugging Face tokenizer: a local folder or tokenizer.json, or a hub name.
    tokenizer: str = "byte"
    tokenizer_digest: str = ""  # sha256 over the tokenizer's files (node/data/tokenizer.py); a node needs it unless "byte"
    vocab_size: int = 256  # the tokenizer's; sets the model's embedding size

    def __post_init__(self) -> None:
        from node.trainer.model import get_preset

        _require(bool(self.tokenizer), "tokenizer must be 'byte' or name a Hugging Face tokenizer")
        _require(self.tokenizer_digest == "" or len(self.tokenizer_digest) == 64, "tokenizer_digest must be 64 hex digits")
        limit = get_preset(self.preset).max_vocab
        _require(
            2 <= self.vocab_size <= limit, f"vocab_size {self.vocab_size} is outside what the {self.preset} preset allows (2..{limit})"
        )


@dataclass(frozen=True)
class TrainSpec:
    inner_steps: int = 40
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10

    def __post_init__(self) -> None:
        _require(self.inner_steps >= 1 and self.batch_size >= 1 and self.seq_len >= 1, "inner_steps, batch_size, seq_len must be positive")
        _require(
            self.lr > 0 and self.weight_decay >= 0 and self.warmup_steps >= 0,
            "lr must be positive, weight_decay and warmup_steps not negative",
        )


@dataclass(frozen=True)
class OuterSpec:
    # Error feedback is the momentum, so plain SGD; lr 3, not SparseLoCo's 1: a sparse mean moves each
    # coordinate too little in short runs (docs/DESIGN.md, "The short-run gap").
    lr: float = 3.0
    momentum: float = 0.0
    nesterov: bool = True
    # G: most contributions a manifest may name. (The one spec name left from when "gather" meant four
    # things: renaming a spec field changes every run id, docs/DESIGN.md.)
    gather_size: int = 32
    probation_slots: int = 8  # of those, at most this many for hotkeys nobody has verified yet


@dataclass(frozen=True)
class CodecSettings:
    """The pseudo-gradient codec (protocol/compression) and the error-feedback decay.

    Default: ``sparseloco-ec``, top-64 of every 4096-chunk with Golomb-Rice coded
    indices and 2-bit values, one pair of levels per 32 chunks (~210x smaller
    than fp32; see README "Performance"). ``value_bits`` and ``scale_group`` only
    matter to the low-bit codecs (sparseloco, sparseloco-ec, demo-dct).
    """

    name: str = "sparseloco-ec"
    chunk: int = 4096
    k: int = 64
    value_bits: int = 2
    scale_group: int = 32
    error_feedback_beta: float = 0.9  # with outer lr 3 (0.95 with lr 1, SparseLoCo's recipe)

    def __post_init__(self) -> None:
        from protocol.compression import CodecSpec, registered_codecs

        _require(self.name in registered_codecs(), f"unknown codec {self.name!r} (known: {', '.join(registered_codecs())})")
        # CompressionError is a ValueError: range errors read like every other config error.
        CodecSpec(name=self.name, chunk=self.chunk, k=self.k, value_bits=self.value_bits, scale_group=self.scale_group)
        _require(0.0 <= self.error_feedback_beta <= 1.0, "error_feedback_beta must be in [0, 1]")

    def codec_spec(self):
        """The protocol-level CodecSpec of these settings (every field a codec reads)."""
        from protocol.compression import CodecSpec

        return CodecSpec(name=self.name, chunk=self.chunk, k=self.k, value_bits=self.value_bits, scale_group=self.scale_group)


BITTENSOR_NETWORKS = ("finney", "test", "local")


@dataclass(frozen=True)
class ChainSpec:
    """Which chain the run lives on: ``kind = "dev"`` with the sqlite ``path``
    of an embedded dev chain, or ``kind = "bittensor"`` with a ``network``
    (finney, test, local: ws://127.0.0.1:9944 unless BT_CHAIN_ENDPOINT says
    otherwise, or a ws:// / wss:// url) and the subnet's ``netuid``."""

    kind: str = "dev"
    path: str = ""  # dev chain file
    network: str = ""  # bittensor network
    netuid: int = 0  # bittensor subnet; the dev chain keeps its own

    def __post_init__(self) -> None:
        _require(self.kind in ("dev", "bittensor"), f"kind must be 'dev' or 'bittensor', not {self.kind!r}")
        _require(self.netuid >= 0, "netuid must not be negative")
        if self.kind == "bittensor":
            _require(
                self.network in BITTENSOR_NETWORKS or self.network.startswith(("ws://", "wss://")),
                f"network must be one of {', '.join(BITTENSOR_NETWORKS)} or a ws:// or wss:// url, not {self.network!r}",
            )
            _require(self.netuid >= 1, "netuid must name a subnet (>= 1; 0 is the root network)")


@dataclass(frozen=True)
class ScheduleSpec:
    start_block: int = 0
    round_seconds: float = 30.0
    # Round r's exchange runs while round r+1 trains, which trains from θ_{r-1} (protocol/schedule.py);
    # false: train half the round, exchange in the other half (kept to measure what overlap gains).
    overlap: bool = True

    def __post_init__(self) -> None:
        _require(self.round_seconds > 0, "round_seconds must be positive")


@dataclass(frozen=True)
class RunSpec:
    name: str = "gradswarm"
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    outer: OuterSpec = field(default_factory=OuterSpec)
    codec: CodecSettings = field(default_factory=CodecSettings)
    chain: ChainSpec = field(default_factory=ChainSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    plan: PlanSpec = field(default_factory=PlanSpec)

    @property
    def run_id(self) -> bytes:
        """The hash of everything that makes the run what it is. Where a node finds its chain (the
        dev chain's file, a bittensor endpoint) is left out: two nodes reaching the same subnet
        through different endpoints must agree on the run, and two demos with the same options
        get the same run id, hence the same page assignment and eval pages."""
        identity = dataclasses.asdict(self)
        identity["chain"] = {"kind": self.chain.kind, "netuid": self.chain.netuid}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True)
class NodeConfig:
    data_dir: str = "gradswarm-data"
    wallet: str = "default"
    hotkey: str = "default"
    wallet_root: str = ""  # empty: bittensor's default ~/.bittensor/wallets
    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[str, ...] = ()
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N"
    torch_threads: int = 0  # 0: torch's default
    evaluate: bool = False  # measure held-out loss after every round (costs a forward pass)
    checkpoint_every: int = 1  # rounds between local state checkpoints (restarts resume from them)
    verify_samples: int = 2  # contributions this node checks per round
    audit_rounds: int = 32  # rounds of verification records (and their inputs) kept for auditors
    weights_every: int = 5  # rounds between weight updates on chain (validators only)
    # Under torchrun (`node run --nproc N`): how the ranks share the model; "auto" is FSDP2 for large presets, else DDP.
    parallel: str = "auto"
    activation_checkpointing: str = "auto"  # "auto": recompute activations on CUDA only; "on" or "off" to force
    http: str = "127.0.0.1:9200"  # HOST:PORT of /status, /metrics, /healthz and the status page; "": off
    http_public: bool = False  # binding `http` to a non-loopback address needs this (node/status/address.py)

    def __post_init__(self) -> None:
        _require(0 <= self.port <= 65535, "port must be in [0, 65535]")
        _require(self.checkpoint_every >= 1 and self.torch_threads >= 0, "checkpoint_every must be positive, torch_threads not negative")
        _require(
            self.verify_samples >= 0 and self.audit_rounds >= 1 and self.weights_every >= 1,
            "verify_samples, audit_rounds, weights_every out of range",
        )
        _require(self.parallel in ("auto", "ddp", "fsdp"), "parallel must be 'auto', 'ddp' or 'fsdp'")
        _require(self.activation_checkpointing in ("auto", "on", "off"), "activation_checkpointing must be 'auto', 'on' or 'off'")
        from node.status.address import check_http

        check_http(self.http, self.http_public)

    corpus_cache: str = ""  # empty: <data_dir>/corpus


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[{where}] unknown keys: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, raw in table.items():
        hint = hints[name]
        label = f"{where}.{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, raw, label)
        elif hint is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise ConfigError(f"{label} must be a number (not nan or inf)")
            kwargs[name] = float(raw)
        elif typing.get_origin(hint) is tuple:
            if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                raise ConfigError(f"{label} must be a list of strings")
            kwargs[name] = tuple(raw)
        else:
            if not isinstance(raw, hint) or (hint is int and (isinstance(raw, bool) or raw not in INT_RANGE)):
                raise ConfigError(f"{label} must be {hint.__name__}{' (64 bits at most)' if hint is int else ''}")
            kwargs[name] = raw
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ConfigError(f"[{where}] {e}") from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def parse_run_file(text: str) -> tuple[RunSpec, NodeConfig]:
    try:
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"not valid TOML: {e}") from None
    node_table = document.pop("node", {})
    spec_table = {"name": document.pop("name", "gradswarm"), **document}
    return _build(RunSpec, spec_table, "spec"), _build(NodeConfig, node_table, "node")


def load_run_file(path: Path) -> tuple[RunSpec, NodeConfig]:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    return parse_run_file(text)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # TOML's basic string is JSON's, less surrogate pairs (so characters past U+FFFF stay raw), plus an escaped DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_run_file(spec: RunSpec, node: NodeConfig) -> str:
    """TOML that `parse_run_file` reads back to the same spec and config."""
    lines = [f"name = {toml_value(spec.name)}"]
    for f in dataclasses.fields(spec):
        if f.name != "name":
            lines += _toml_table(f.name, dataclasses.asdict(getattr(spec, f.name)))
    lines += _toml_table("node", dataclasses.asdict(node))
    return "\n".join(lines) + "\n"


def _toml_table(name: str, table: dict[str, Any]) -> list[str]:
    lines = [f"\n[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += _toml_table(f"{name}.{key}", value)
    return lines
