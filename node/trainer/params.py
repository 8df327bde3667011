"""Between the model and the swarm's flat vectors: parameters in sorted-name order.

Sorted names, not registration order, define the layout, so two
implementations of the same architecture agree on what index i means.
"""

from __future__ import annotations

import torch


def _ordered(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0])]


def numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in _ordered(model))


@torch.no_grad()
def flatten(model: torch.nn.Module) -> torch.Tensor:
    """All parameters as one flat float32 vector on the model's device."""
    return torch.cat([p.detach().reshape(-1).float() for p in _ordered(model)])


@torch.no_grad()
def load_flat(model: torch.nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    for p in _ordered(model):
        n = p.numel()
        p.copy_(flat[offset : offset + n].view_as(p))
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} values, model has {offset}")


def as_state_dict(model: torch.nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Views of ``flat`` by parameter name: the full state dict torch.distributed.checkpoint loads from."""
    named, offset = {}, 0
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        named[name] = flat[offset : offset + p.numel()].view(p.shape)
        offset += p.numel()
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} values, model has {offset}")
    return named


def from_state_dict(named: dict[str, torch.Tensor]) -> torch.Tensor:
    """The flat float32 vector of a full state dict (parameters only), in sorted-name order."""
    return torch.cat([named[name].reshape(-1).float() for name in sorted(named)])


def flatten_grad(model: torch.nn.Module) -> torch.Tensor:
    """All parameter gradients as one flat float32 vector, in the same layout as `flatten` (0 where none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).float() for p in _ordered(model)])
