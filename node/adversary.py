"""Misbehaving nodes for `gradswarm demo --adversaries`: what the verifier must catch.

Each kind changes one step of an otherwise honest node, the way a cheater
would. Nothing here runs unless a node's config names an adversary kind.
"""

from __future__ import annotations

import torch

KINDS = ("copy", "noise", "wrong-pages", "scaled", "stale")


def check_kind(kind: str) -> str:
    if kind and kind not in KINDS:
        raise ValueError(f"unknown adversary kind {kind!r}; choose from {', '.join(KINDS)}")
    return kind


def training_hotkey(kind: str, hotkey: str) -> str:
    """wrong-pages trains on the pages of an identity that is not its own."""
    return hotkey + "/elsewhere" if kind == "wrong-pages" else hotkey


def forge_delta(kind: str, delta: torch.Tensor, round_: int) -> torch.Tensor:
    """noise replaces the update by random values of the same norm; scaled multiplies it by 100."""
    if kind == "noise":
        g = torch.Generator().manual_seed(round_)
        noise = torch.randn(delta.numel(), generator=g).to(delta.device)
        return noise * (delta.norm() / noise.norm())
    if kind == "scaled":
        return delta * 100.0
    return delta
