"""How a contribution lines up with the loss gradient of single windows at θ_r.

A contribution Δ = θ_r − θ_local is a sum of the inner loop's gradient steps,
so it points along the gradient of the windows it trained on. For a window w,
`a(Δ, w) = <Δ/|Δ|, ∇L_w(θ_r)>` is the first-order loss gain on w from a step
along Δ: one backward pass per window, after which every contribution of the
round costs only a dot product. Gradients are kept per window for the round,
so the control windows, which every subject is held against, are computed once.

Dot products are float64, one pair at a time, so a value does not depend on
which other contributions a caller asked about: the verifier (a whole round)
and `gradswarm audit replay` (one record) get the same bits.
"""

from __future__ import annotations

import hashlib

import torch

from node.trainer import params
from node.trainer.inner import _lm_loss, row_losses


def _key(window: torch.Tensor) -> bytes:
    return hashlib.sha256(window.numpy().tobytes()).digest()


class Gradients:
    """∇L_w(θ) per window, unit directions and norms per contribution, and the dot products between
    them, memoized for one θ_r: each is computed once per round however many checks read it.

    Keys are the window's tokens and the vectors' identities; the memo holds on to the vectors, so
    no identity is reused while it lives.
    """

    def __init__(self, model: torch.nn.Module, theta: torch.Tensor) -> None:
        self.model, self.theta = model, theta
        self.device = next(model.parameters()).device
        self._gradients: dict[bytes, torch.Tensor] = {}
        self._units: dict[int, tuple[torch.Tensor, float, torch.Tensor]] = {}
        self._dots: dict[tuple, float] = {}
        self._losses: dict[bytes, float] = {}
        self.windows = 0  # backward passes run: the verifier's compute
        self.rows = 0  # forward passes run for losses

    def _load(self) -> None:
        """Put θ into the scratch model unless it holds it: memos of several states (a subject's head
        start) share one model, so the model, not the memo, remembers which θ it holds."""
        if getattr(self.model, "gradswarm_holds", None) is not self.theta:
            params.load_flat(self.model, self.theta.to(self.device))
            self.model.gradswarm_holds = self.theta

    def losses(self, windows: torch.Tensor) -> list[float]:
        """Each window's mean loss at θ, float32 (`row_losses`, what a node commits to)."""
        keys = [_key(w) for w in windows]
        missing = [i for i, k in enumerate(keys) if k not in self._losses]
        if missing:
            self._load()
            for i, loss in zip(missing, row_losses(self.model, windows[missing], self.device), strict=True):
                self._losses[keys[i]] = loss
            self.rows += len(missing)
        return [self._losses[k] for k in keys]

    def gradient(self, window: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        key = _key(window)
        if key not in self._gradients:
            self._load()
            self.model.eval()
            self.model.zero_grad(set_to_none=True)
            _lm_loss(self.model, window[None].to(self.device)).backward()
            self._gradients[key] = params.flatten_grad(self.model).double().cpu()
            self.model.zero_grad(set_to_none=True)
            self.windows += 1
        return key, self._gradients[key]

    def _unit(self, vector: torch.Tensor) -> tuple[torch.Tensor, float]:
        held = self._units.get(id(vector))
        if held is None:
            v = vector.double().cpu()
            norm = float(torch.linalg.vector_norm(v))
            held = (v / norm if norm > 0 else v, norm, vector)
            self._units[id(vector)] = held
        return held[0], held[1]

    def norm(self, vector: torch.Tensor) -> float:
        return self._unit(vector)[1]

    def cosine(self, a: torch.Tensor, b: torch.Tensor) -> float:
        key = (min(id(a), id(b)), max(id(a), id(b)))
        if key not in self._dots:
            self._dots[key] = float(torch.dot(self._unit(a)[0], self._unit(b)[0]))
        return self._dots[key]

    def alignments(self, windows: torch.Tensor, vectors: list[torch.Tensor]) -> torch.Tensor:
        """[windows, vectors] float64: a(v, w) for every pair."""
        out = torch.empty((windows.shape[0], len(vectors)), dtype=torch.float64)
        for i in range(windows.shape[0]):
            key, g = self.gradient(windows[i])
            for j, v in enumerate(vectors):
                pair = (key, id(v))
                if pair not in self._dots:
                    self._dots[pair] = float(torch.dot(self._unit(v)[0], g))
                out[i, j] = self._dots[pair]
        return out
