import pytest
import torch

from node.checkpoint.state import (
    StateError,
    max_state_bytes,
    parse_state,
    serialize_state,
)
from node.outer.aggregate import clip_factors, robust_mean
from node.outer.optimizer import OuterOptimizer, OuterState


def test_clip_to_median_norm():
    vs = [torch.full((4,), 1.0), torch.full((4,), 2.0), torch.full((4,), 100.0)]
    factors = clip_factors(vs)
    assert factors[0] == 1.0 and factors[1] == 1.0
    assert factors[2] == pytest.approx(0.02)
    mean = robust_mean(vs)
    assert torch.allclose(mean, torch.full((4,), (1.0 + 2.0 + 2.0) / 3))


def test_one_huge_contribution_cannot_move_the_mean_far():
    honest = [torch.randn(1000, generator=torch.Generator().manual_seed(i)) * 0.01 for i in range(4)]
    attack = torch.full((1000,), 1e6)
    clean = robust_mean(honest)
    attacked = robust_mean([*honest, attack])
    median = sorted(float(v.norm()) for v in [*honest, attack])[2]
    assert float((attacked - clean).norm()) <= 2 * median  # bounded by the median norm, not by 1e6


def test_aggregation_is_bitwise_reproducible_and_order_defined():
    vs = [torch.randn(10_000, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    a = robust_mean(vs)
    b = robust_mean([v.clone() for v in vs])
    assert torch.equal(a, b)


def test_weights_scale_each_clipped_contribution_and_equal_weights_change_nothing():
    vs = [torch.full((4,), 1.0), torch.full((4,), 2.0), torch.full((4,), 100.0)]  # the last is clipped to norm 4
    assert torch.equal(robust_mean(vs, [1.0, 1.0, 1.0]), robust_mean(vs))
    assert torch.allclose(robust_mean(vs, [1.0, 0.5, 0.5]), torch.full((4,), (1.0 + 0.5 * 2.0 + 0.5 * 2.0) / 2.0))
    with pytest.raises(ValueError):
        robust_mean(vs, [1.0, 1.0])
    with pytest.raises(ValueError):
        robust_mean(vs, [1.0, 0.0, 1.0])


def test_empty_aggregate():
    with pytest.raises(ValueError):
        robust_mean([])


def test_nesterov_step_and_hash():
    state = OuterState.fresh(torch.zeros(3))
    before = state.state_hash()
    OuterOptimizer(lr=0.5, momentum=0.9, nesterov=True).step(state, torch.tensor([1.0, 0.0, -1.0]))
    # m = g; θ = -lr (g + 0.9 m) = -0.5 * 1.9 g
    assert torch.allclose(state.theta, torch.tensor([-0.95, 0.0, 0.95]))
    assert torch.equal(state.momentum, torch.tensor([1.0, 0.0, -1.0]))
    assert state.state_hash() != before
    clone = state.clone()
    assert clone.state_hash() == state.state_hash()
    clone.momentum[0] += 1e-7  # the hash covers the momentum too
    assert clone.state_hash() != state.state_hash()


def test_state_serialization_round_trip_and_hardening():
    state = OuterState.fresh(torch.randn(100))
    state.momentum.normal_()
    data = serialize_state(state, 5)
    back = parse_state(data, 100)
    assert back.state_hash() == state.state_hash()
    with pytest.raises(StateError, match="expected float32"):
        parse_state(data, 99)
    with pytest.raises(StateError, match="not a safetensors"):
        parse_state(data[:50], 100)
    with pytest.raises(StateError, match="exceeds"):
        parse_state(b"\x00" * (max_state_bytes(100) + 1), 100)
    bad = OuterState(theta=state.theta.clone(), momentum=state.momentum.clone())
    bad.theta[3] = float("nan")
    with pytest.raises(StateError, match="non-finite"):
        parse_state(serialize_state(bad, 5), 100)
    from safetensors.torch import save

    with pytest.raises(StateError, match="unexpected tensors"):
        parse_state(save({"theta": state.theta, "evil": state.momentum}), 100)
    with pytest.raises(StateError, match="expected float32"):
        parse_state(save({"theta": state.theta.double(), "momentum": state.momentum}), 100)


def test_local_checkpoint_round_trip(tmp_path):
    from node.checkpoint.state import load_checkpoint, save_checkpoint

    path = tmp_path / "state.safetensors"
    assert load_checkpoint(path, 10) is None
    state = OuterState.fresh(torch.randn(10))
    save_checkpoint(path, state, 7)
    loaded, round_ = load_checkpoint(path, 10)
    assert round_ == 7 and loaded.state_hash() == state.state_hash()
    path.write_bytes(path.read_bytes()[:-3])  # a damaged file is an error, not a silent fresh start
    with pytest.raises(StateError):
        load_checkpoint(path, 10)
