"""Inner optimization (the H local AdamW steps of a DiLoCo round) and evaluation.

The AdamW state persists across rounds (DiLoCo keeps the inner optimizer
state).  Batches are random windows of ``seq_len + 1`` tokens cut from the
given pages, chosen by a ``torch.Generator`` seeded by the caller, so a round
is reproducible from (weights, optimizer state, pages, seed, lr factor).  The
caller passes the round's factor of the run's plan (protocol/plan.py) to
``train``: a fresh optimizer's ``warmup_steps`` ramp is multiplied by it.  ``eval_loss``
uses fixed non-overlapping windows and is deterministic.

bf16 autocast is used on CUDA only; CPU runs in float32.

Under torchrun the model is DDP- or FSDP2-wrapped and a ``Shard`` says which
rows of each batch this rank computes (node/trainer/shard.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from node.trainer.shard import Shard

if TYPE_CHECKING:
    from node.config import TrainSpec

__all__ = ["InnerTrainer", "draw_windows", "eval_loss", "eval_windows", "first_batch", "row_losses", "sample_windows"]


def _as_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def _autocast(device: torch.device):
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _check_pages(pages: Sequence[np.ndarray], seq_len: int) -> list[np.ndarray]:
    if not pages:
        raise ValueError("no pages given")
    out = []
    for i, p in enumerate(pages):
        a = np.asarray(p)
        if a.ndim != 1:
            raise ValueError(f"page {i} is not 1-D")
        if a.shape[0] < seq_len + 1:
            raise ValueError(f"page {i} has {a.shape[0]} tokens, need at least seq_len + 1 = {seq_len + 1}")
        out.append(a)
    return out


def draw_windows(page_tokens: Sequence[int], batch_size: int, seq_len: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """(page index, start offset) of one batch's windows, drawn with ``gen``: the batch order.

    A verifier replays it from the trainer's public seed to know which windows
    a step trained on, so this is the one place the draw is defined.
    """
    page_idx = torch.randint(len(page_tokens), (batch_size,), generator=gen).tolist()
    u = torch.rand((batch_size,), generator=gen, dtype=torch.float64).tolist()
    starts = []
    for pi, ui in zip(page_idx, u, strict=True):
        n_off = page_tokens[pi] - seq_len  # valid start offsets: 0 .. n_off - 1
        starts.append((pi, min(int(ui * n_off), n_off - 1)))
    return starts


def sample_windows(pages: Sequence[np.ndarray], batch_size: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    """One batch [batch_size, seq_len + 1] (int64, CPU) of random windows drawn with ``gen``."""
    starts = draw_windows([page.shape[0] for page in pages], batch_size, seq_len, gen)
    rows = [pages[pi][off : off + seq_len + 1] for pi, off in starts]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def eval_windows(pages: Sequence[np.ndarray], seq_len: int) -> torch.Tensor:
    """All fixed windows [N, seq_len + 1] (int64, CPU): per page, inputs at offsets 0, seq_len, 2*seq_len, ..."""
    pages = _check_pages(pages, seq_len)
    rows = []
    for page in pages:
        n = (page.shape[0] - 1) // seq_len
        for k in range(n):
            rows.append(page[k * seq_len : k * seq_len + seq_len + 1])
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def _lm_loss(model: torch.nn.Module, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    x, y = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction=reduction)


class InnerTrainer:
    """AdamW inner optimizer bound to one model; its state persists across ``train`` calls."""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 0,
        batch_size: int = 8,
        seq_len: int = 128,
        device: str | torch.device | None = None,
        grad_clip: float = 1.0,
        eps: float = 1e-8,
        shard: Shard | None = None,
    ):
        if batch_size <= 0 or seq_len <= 0:
            raise ValueError("batch_size and seq_len must be positive")
        if warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        self.model = model
        self.device = _as_device(device)
        self.lr = float(lr)
        self.warmup_steps = int(warmup_steps)
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.grad_clip = float(grad_clip)
        self.shard = shard
        if shard is not None:
            shard.rows(self.batch_size)  # fails early if the batch cannot be split over the ranks
        self.step_count = 0  # total inner steps taken, across rounds (drives warmup)
        self.last_steps = 0  # steps the last train() call took (fewer than asked if it hit its deadline)
        self.last_seconds = 0.0  # wall seconds the last train() call spent in its steps (the GPU's busy time)
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
        groups = [{"params": decay, "weight_decay": float(weight_decay)}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=self._lr_at(0),
            betas=tuple(betas),
            eps=eps,
            fused=True if self.device.type == "cuda" else None,
        )

    @classmethod
    def from_spec(
        cls, model: torch.nn.Module, train: TrainSpec, device: str | torch.device | None, shard: Shard | None = None
    ) -> InnerTrainer:
        """The run spec's inner optimizer for `model` (every node of a run uses the same one)."""
        return cls(
            model,
            lr=train.lr,
            weight_decay=train.weight_decay,
            warmup_steps=train.warmup_steps,
            batch_size=train.batch_size,
            seq_len=train.seq_len,
            device=device,
            shard=shard,
        )

    def _lr_at(self, step: int, factor: float = 1.0) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * factor * (step + 1) / self.warmup_steps
        return self.lr * factor

    def train(self, pages: Sequence[np.ndarray], steps: int, seed: int, deadline: float | None = None, lr_factor: float = 1.0) -> float:
        """Run ``steps`` AdamW steps on random windows of ``pages``; return the mean training loss.

        The peak lr of these steps is ``lr * lr_factor``: the round's factor of the run's plan.
        With a ``deadline`` (wall-clock seconds) it stops early once that time has
        passed, so a slow machine still publishes its partial work within the round;
        ``last_steps`` tells how many steps ran.
        """
        if steps <= 0:
            raise ValueError("steps must be positive")
        if not lr_factor >= 0.0:
            raise ValueError("lr_factor must not be negative")
        pages = _check_pages(pages, self.seq_len)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        model = self.model
        was_training = model.training
        model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        done = 0
        started = time.perf_counter()
        try:
            for _ in range(steps):
                if deadline is not None and done > 0 and self._past(deadline):
                    break
                batch = sample_windows(pages, self.batch_size, self.seq_len, gen)
                if self.shard is not None:
                    batch = batch[self.shard.rows(self.batch_size)]
                batch = batch.to(self.device, non_blocking=True)
                lr = self._lr_at(self.step_count, lr_factor)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                with _autocast(self.device):
                    if self.shard is None:
                        loss = _lm_loss(model, batch)
                    else:  # this rank's share of the whole batch's mean (see shard.py)
                        loss = _lm_loss(model, batch, reduction="sum") / (self.batch_size * self.seq_len)
                self.optimizer.zero_grad(set_to_none=True)
                (loss if self.shard is None else loss * self.shard.world).backward()
                if self.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                self.optimizer.step()
                self.step_count += 1
                done += 1
                total += loss.detach().to(torch.float64)
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            model.train(was_training)
        self.last_steps = done
        if self.shard is not None:
            total = self.shard.total(total)
        mean = float(total.item()) / done  # waits for the device, so the time below is the steps' own
        self.last_seconds = time.perf_counter() - started
        return mean

    def _past(self, deadline: float) -> bool:
        return time.time() >= deadline if self.shard is None else self.shard.past(deadline)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        """Raises ValueError when the state is not this model's (torch checks the groups, not the shapes)."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for index, slots in state["optimizer"].get("state", {}).items():
            if not (isinstance(index, int) and 0 <= index < len(params)) or any(
                torch.is_tensor(v) and v.ndim > 0 and v.shape != params[index].shape for v in slots.values()
            ):
                raise ValueError("the saved inner optimizer state does not fit this model")
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step_count"])


def first_batch(pages: Sequence[np.ndarray], batch_size: int, seq_len: int, seed: int) -> torch.Tensor:
    """The batch the first inner step of a round seeded with `seed` trains on."""
    return sample_windows(pages, batch_size, seq_len, torch.Generator(device="cpu").manual_seed(int(seed)))


@torch.no_grad()
def row_losses(model: torch.nn.Module, windows: torch.Tensor, device: str | torch.device | None = None) -> list[float]:
    """The mean next-token loss of each window, in float32 whatever the device: what a node commits
    to for its first batch and a verifier recomputes, so the two differ only by summation order."""
    device = _as_device(device)
    was_training = model.training
    model.eval()
    try:
        losses = _lm_loss(model, windows.to(device), reduction="none").view(windows.shape[0], -1).mean(dim=1)
    finally:
        model.train(was_training)
    return [float(x) for x in losses.double().cpu()]


@torch.no_grad()
def eval_loss(
    model: torch.nn.Module,
    pages: Sequence[np.ndarray],
    seq_len: int,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> float:
    """Mean next-token loss over fixed non-overlapping windows of ``pages`` (deterministic)."""
    device = _as_device(device)
    windows = eval_windows(pages, seq_len)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for i in range(0, windows.shape[0], batch_size):
            batch = windows[i : i + batch_size].to(device, non_blocking=True)
            with _autocast(device):
                total += _lm_loss(model, batch, reduction="sum").to(torch.float64)
    finally:
        model.train(was_training)
    return float(total.item()) / (windows.shape[0] * seq_len)
