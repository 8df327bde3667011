"""The shared state (θ, outer momentum) on disk and on the wire, as safetensors.

Downloaded states are untrusted: `parse_state` accepts exactly the two
expected flat float32 tensors of the expected length, and the caller compares
the resulting hash with one a permitted validator signed.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from node.fsutil import atomic_write
from node.outer.optimizer import OuterState
from node.progress import read_file

log = logging.getLogger(__name__)
HEADER_ALLOWANCE = 4096


class StateError(ValueError):
    """Bytes that are not a state of this run's model."""


def manifest_path(state_path: Path) -> Path:
    """Where a checkpoint keeps the signed manifest that vouches for it (node/round/finish.py)."""
    return state_path.with_suffix(".manifest")


def max_state_bytes(numel: int) -> int:
    return 2 * 4 * numel + HEADER_ALLOWANCE


def serialize_state(state: OuterState, round_: int) -> bytes:
    return st_save({"theta": state.theta, "momentum": state.momentum}, metadata={"round": str(round_)})


def parse_state(data: bytes, numel: int) -> OuterState:
    if len(data) > max_state_bytes(numel):
        raise StateError(f"state of {len(data)} bytes exceeds {max_state_bytes(numel)}")
    try:
        tensors = st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise StateError(f"not a safetensors state: {e}") from None
    if set(tensors) != {"theta", "momentum"}:
        raise StateError(f"unexpected tensors {sorted(tensors)[:4]}")
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32 or tuple(tensor.shape) != (numel,):
            raise StateError(f"{name}: {tensor.dtype} {tuple(tensor.shape)}, expected float32 ({numel},)")
        if not bool(torch.isfinite(tensor).all()):
            raise StateError(f"{name}: non-finite values")
    return OuterState(theta=tensors["theta"], momentum=tensors["momentum"])


def save_checkpoint(path: Path, state: OuterState, round_: int) -> None:
    """The node's own copy of the shared state, so a restart (even of the whole swarm) loses nothing."""
    atomic_write(path, serialize_state(state, round_))


def save_feedback(path: Path, feedback: dict[str, torch.Tensor]) -> None:
    """The error-feedback residual: under SparseLoCo's recipe it is the momentum, so it must survive restarts."""
    if feedback:
        atomic_write(path, st_save({name: t.to("cpu") for name, t in feedback.items()}))


def load_feedback(path: Path, numel: int) -> dict[str, torch.Tensor]:
    """The saved residual, or {} if none; a damaged or foreign file is a StateError."""
    if not path.exists():
        return {}
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise StateError(f"{path}: not a safetensors file: {e}") from None
    residual = tensors.get("residual")
    if set(tensors) != {"residual"} or residual is None or tuple(residual.shape) != (numel,) or residual.dtype != torch.float32:
        raise StateError(f"{path}: not an error-feedback residual of this model")
    return {"residual": residual}


def save_inner(path: Path, state: dict) -> None:
    """The inner optimizer (AdamW moments and the step count that drives warmup): without it a
    restarted node would warm up again from zero."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def load_inner(path: Path) -> dict | None:
    """The saved inner optimizer state, or None if there is none; a damaged file is a StateError.
    Only tensors and plain values are unpickled (weights_only), never code."""
    if not path.exists():
        return None
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged or hostile pickles
        raise StateError(f"{path}: not an inner optimizer state: {e}") from None
    if not isinstance(state, dict) or set(state) != {"optimizer", "step_count"}:
        raise StateError(f"{path}: not an inner optimizer state")
    return state


def load_checkpoint(path: Path, numel: int) -> tuple[OuterState, int] | None:
    """The saved state and the round it starts, or None if there is none; a damaged file is an error.

    A large checkpoint (a state is 8 bytes per parameter) gets a progress bar by bytes, or log lines
    when stderr is no terminal, if reading it takes a second or more."""
    if not path.exists():
        return None
    state = parse_state(read_file(path, f"loading checkpoint {path.name}", log, delay=1.0), numel)
    with safe_open(path, framework="pt") as f:
        round_text = (f.metadata() or {}).get("round", "")
    if not round_text.isdigit():
        raise StateError(f"{path}: checkpoint without a round number")
    return state, int(round_text)
