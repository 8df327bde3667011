"""Error feedback: the residual a node carries from round to round.

One round (DESIGN.md "One round", step 1)::

    e <- beta * e + delta
    c  = codec.encode(e)
    e <- e - codec.decode(c)

so whatever the codec drops this round is sent in a later one. The buffer
lives on the device of the latest ``delta``; it starts as zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .base import Codec

__all__ = ["ErrorFeedback"]


class ErrorFeedback:
    """The error-feedback residual ``e`` of one node (a flat float32 vector)."""

    def __init__(self) -> None:
        self._residual: torch.Tensor | None = None

    @property
    def residual(self) -> torch.Tensor | None:
        """The current residual (None before the first step or load)."""
        return self._residual

    def step(self, delta: torch.Tensor, codec: Codec, beta: float) -> bytes:
        """Fold ``delta`` into the residual, encode it, subtract what was sent;
        returns the payload."""
        if not isinstance(delta, torch.Tensor):
            raise TypeError(f"delta must be a torch.Tensor, got {type(delta).__name__}")
        if delta.dim() != 1 or not delta.dtype.is_floating_point:
            raise ValueError(f"delta must be a 1-D floating point tensor, got {delta.dtype} {tuple(delta.shape)}")
        beta = float(beta)
        if not (math.isfinite(beta) and 0.0 <= beta <= 1.0):
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        with torch.no_grad():
            d = delta.detach().to(torch.float32)
            old = self._residual
            if old is None:
                e = d.clone()
            elif old.numel() != d.numel():
                raise ValueError(f"delta has {d.numel()} elements, the residual has {old.numel()}")
            else:
                # Out of place: if encoding fails (e.g. a non-finite delta)
                # the stored residual is left as it was.
                e = torch.add(d, old.to(d.device), alpha=beta)
            payload = codec.encode(e)
            e.sub_(codec.decode(payload, e.numel(), device=e.device))
        self._residual = e
        return payload

    def reset(self) -> None:
        """Forget the residual."""
        self._residual = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"residual": tensor}`` (a copy), or ``{}`` before the first step."""
        if self._residual is None:
            return {}
        return {"residual": self._residual.detach().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (the tensor is copied; it moves
        to the device of the next ``delta``)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        extra = set(state) - {"residual"}
        if extra:
            raise ValueError(f"unexpected keys in error-feedback state: {sorted(extra)}")
        if "residual" not in state:
            self._residual = None
            return
        r = state["residual"]
        if not isinstance(r, torch.Tensor) or r.dim() != 1 or r.dtype != torch.float32:
            raise ValueError("error-feedback residual must be a 1-D float32 tensor")
        if not bool(torch.isfinite(r).all()):
            raise ValueError("error-feedback residual contains NaN or inf")
        self._residual = r.detach().clone()
