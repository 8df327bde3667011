"""Model presets (transformers Llama family; the vocabulary is the run's tokenizer's) and deterministic init.

Every node that calls ``build_model(preset, seed)`` with the same preset, seed
and torch version gets bit-identical initial weights: parameters are drawn
from a dedicated ``torch.Generator`` in ``named_parameters()`` order, on CPU,
independently of transformers' own init code and of the global RNG (which is
left untouched).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

__all__ = [
    "ModelPreset",
    "PRESETS",
    "get_preset",
    "llama_config",
    "build_model",
    "node_model",
    "recomputes_activations",
    "param_count",
    "init_weights",
]

ACTIVATION_CHECKPOINTING = ("auto", "on", "off")

INITIALIZER_RANGE = 0.02


@dataclass(frozen=True)
class ModelPreset:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    seq_len: int
    max_vocab: int  # the largest tokenizer the preset takes: the embeddings must not dwarf the model
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be divisible by num_kv_heads")

    def to_dict(self) -> dict:
        return asdict(self)


# Parameter counts (vocab 256, untied embeddings; a vocabulary V adds 2·V·hidden_size):
#   tiny      ~1.1M  (CPU demo: fast on one core)
#   small     ~20.7M (CPU / small GPU)
#   base100m  ~104M  (GPU)
#   base1b    ~0.97B (GPU)
PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=4, intermediate_size=512, seq_len=128, max_vocab=16384),
    "small": ModelPreset(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4, intermediate_size=1152, seq_len=256, max_vocab=65536),
    "base100m": ModelPreset(
        hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=3072, seq_len=1024, max_vocab=131072
    ),
    "base1b": ModelPreset(
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=8192,
        seq_len=2048,
        max_vocab=262144,
        rope_theta=500000.0,
    ),
}


def get_preset(preset: str | ModelPreset) -> ModelPreset:
    if isinstance(preset, ModelPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown model preset {preset!r}; known: {sorted(PRESETS)}") from None


def llama_config(preset: str | ModelPreset, attn_implementation: str = "sdpa", vocab_size: int = 256) -> LlamaConfig:
    p = get_preset(preset)
    if not 2 <= vocab_size <= p.max_vocab:
        raise ValueError(f"vocab_size {vocab_size} is outside what this preset allows (2..{p.max_vocab})")
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=p.seq_len,
        initializer_range=INITIALIZER_RANGE,
        rms_norm_eps=p.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": p.rope_theta},
        tie_word_embeddings=False,
        attention_dropout=0.0,
        attention_bias=False,
        mlp_bias=False,
        use_cache=False,
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
    )
    cfg._attn_implementation = attn_implementation
    return cfg


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Deterministically (re)initialize every parameter from ``seed``.

    Norm weights -> 1; other matrices ~ N(0, 0.02), with the residual output
    projections (o_proj, down_proj) scaled by 1/sqrt(2 * num_layers).
    Values are drawn on CPU in float32 and then copied, so the result does not
    depend on the device or dtype the model lives on.
    """
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", 1) or 1
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.fill_(1.0)
            continue
        if p.ndim < 2:
            p.zero_()  # biases (none in the presets)
            continue
        std = INITIALIZER_RANGE
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            std = INITIALIZER_RANGE / math.sqrt(2 * num_layers)
        w = torch.empty(p.shape, dtype=torch.float32, device="cpu")
        w.normal_(0.0, std, generator=gen)
        p.copy_(w)


def build_model(preset: str | ModelPreset, seed: int, attn_implementation: str = "sdpa", vocab_size: int = 256) -> LlamaForCausalLM:
    """A fresh float32 Llama model on CPU with weights determined by ``seed``.

    Move it with ``.to(device)`` afterwards.  The global torch RNG is not touched.
    """
    cfg = llama_config(preset, attn_implementation=attn_implementation, vocab_size=vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = LlamaForCausalLM(cfg)
    init_weights(model, seed)
    model.config.use_cache = False
    return model


def recomputes_activations(setting: str, device: torch.device) -> bool:
    """Whether ``setting`` ("auto", "on", "off") turns activation checkpointing on for ``device``.

    "auto" is on for CUDA only: there activation memory is what limits the batch
    of the large presets, while on CPU memory is plentiful and recomputing would
    only cost time. Recomputation does not change the result.
    """
    if setting not in ACTIVATION_CHECKPOINTING:
        raise ValueError(f"activation_checkpointing must be one of {ACTIVATION_CHECKPOINTING}")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def node_model(
    preset: str | ModelPreset, seed: int, device: torch.device, activation_checkpointing: str = "off", vocab_size: int = 256
) -> LlamaForCausalLM:
    """``build_model`` on ``device``, each decoder layer's activations recomputed in backward if the setting says so."""
    model = build_model(preset, seed, vocab_size=vocab_size).to(device)
    if recomputes_activations(activation_checkpointing, device):
        # Both wrap each decoder layer's __call__ in torch.utils.checkpoint; later transformers renamed the first.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
