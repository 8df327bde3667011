"""SwarmNode pieces that need no network: start-up state and the local checkpoint."""

import torch
from bittensor.sp_core import Keypair

from node.chain import DevChain
from node.checkpoint.state import save_checkpoint
from node.config import ChainSpec, NodeConfig, RunSpec, ScheduleSpec
from node.service import SwarmNode


def make_node(tmp_path, chain):
    keypair = Keypair.create_from_uri("//Alice")
    spec = RunSpec(chain=ChainSpec(kind="dev", path=str(chain.path)), schedule=ScheduleSpec(round_seconds=10))
    config = NodeConfig(data_dir=str(tmp_path / "node"), corpus_cache=str(tmp_path / "corpus"), torch_threads=1)
    return SwarmNode(spec, config, keypair, chain)


def test_fresh_nodes_agree_on_the_initial_state(tmp_path):
    chain = DevChain.create(tmp_path / "chain.sqlite")
    a, b = make_node(tmp_path / "a", chain), make_node(tmp_path / "b", chain)
    a._setup_compute()
    b._setup_compute()
    assert a.state_hash == b.state_hash and a.state_round == 0
    assert a.eval_page_ids == b.eval_page_ids and not set(a.eval_page_ids) - a.excluded


def test_restart_resumes_from_the_local_checkpoint(tmp_path):
    chain = DevChain.create(tmp_path / "chain.sqlite")
    node = make_node(tmp_path, chain)
    node._setup_compute()
    moved = node.state.clone()
    moved.theta.add_(0.01)
    save_checkpoint(node.checkpoint_path, moved, 5)

    restarted = make_node(tmp_path, chain)
    restarted._setup_compute()
    assert restarted.state_hash == moved.state_hash() and restarted.state_round == 5
    assert torch.equal(restarted.state.theta, moved.theta)


def test_damaged_checkpoint_falls_back_to_a_fresh_state(tmp_path):
    chain = DevChain.create(tmp_path / "chain.sqlite")
    node = make_node(tmp_path, chain)
    node._setup_compute()
    fresh_hash = node.state_hash
    node.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    node.checkpoint_path.write_bytes(b"not a checkpoint")
    restarted = make_node(tmp_path, chain)
    restarted._setup_compute()
    assert restarted.state_hash == fresh_hash and restarted.state_round == 0


def test_payloads_are_embargoed_until_the_reveal_time(tmp_path):
    import asyncio
    import time

    chain = DevChain.create(tmp_path / "chain.sqlite")
    node = make_node(tmp_path, chain)
    now = time.time()
    current = node.schedule.round_at(now)
    node.contributions.payloads[b"d" * 32] = (current + 1, b"next round's payload")  # its reveal is in the future
    node.contributions.payloads[b"e" * 32] = (current - 1, b"last round's payload")  # revealed long ago
    assert asyncio.run(node._lookup("payload", b"d" * 32)) is None
    assert asyncio.run(node._lookup("payload", b"e" * 32)) == b"last round's payload"
    assert asyncio.run(node._lookup("payload", b"x" * 32)) is None


def test_restart_keeps_the_error_feedback_residual(tmp_path):
    from node.checkpoint.state import save_feedback

    chain = DevChain.create(tmp_path / "chain.sqlite")
    node = make_node(tmp_path, chain)
    node._setup_compute()
    residual = torch.randn(node.numel)
    save_feedback(node.feedback_path, {"residual": residual})
    restarted = make_node(tmp_path, chain)
    restarted._setup_compute()
    assert torch.equal(restarted.feedback.residual, residual)
    restarted.feedback_path.write_bytes(b"junk")  # damaged: ignored, not fatal
    again = make_node(tmp_path, chain)
    again._setup_compute()
    assert again.feedback.residual is None


def test_restart_keeps_the_inner_optimizer(tmp_path):
    from node.checkpoint.state import save_inner

    chain = DevChain.create(tmp_path / "chain.sqlite")
    node = make_node(tmp_path, chain)
    node._setup_compute()
    pages = node.corpus.pages(list(range(4)))
    node.trainer.train(pages, steps=3, seed=1)
    save_inner(node.inner_path, node.trainer.state_dict())
    restarted = make_node(tmp_path, chain)
    restarted._setup_compute()
    assert restarted.trainer.step_count == 3  # warmup goes on where it stopped
    saved = node.trainer.optimizer.state_dict()["state"]
    loaded = restarted.trainer.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[i]["exp_avg"], loaded[i]["exp_avg"]) for i in saved)

    restarted.inner_path.write_bytes(b"junk")  # damaged: ignored, not fatal
    assert make_node(tmp_path, chain)._setup_compute() is None
    state = node.trainer.state_dict()
    first = next(iter(state["optimizer"]["state"]))
    state["optimizer"]["state"][first]["exp_avg"] = torch.zeros(3)  # another model's shapes
    save_inner(node.inner_path, state)
    again = make_node(tmp_path, chain)
    again._setup_compute()
    assert again.trainer.step_count == 0
