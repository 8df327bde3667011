"""SwarmNode pieces that need no network: start-up state, the local checkpoint, and what it serves."""

import torch
from bittensor.sp_core import Keypair

from node.checkpoint.state import save_checkpoint
from node.config import ChainSpec, NodeConfig, RunSpec, ScheduleSpec
from node.service import SwarmNode


def make_node(tmp_path, chain):
    keypair = Keypair.create_from_uri("//Alice")
    spec = RunSpec(chain=ChainSpec(kind="dev", path=str(chain.path)), schedule=ScheduleSpec(round_seconds=10))
    config = NodeConfig(data_dir=str(tmp_path / "node"), corpus_cache=str(tmp_path / "corpus"), torch_threads=1)
    return SwarmNode(spec, config, keypair, chain)


def test_fresh_nodes_agree_on_the_initial_state(tmp_path, chain):
    a, b = make_node(tmp_path / "a", chain), make_node(tmp_path / "b", chain)
    a.setup()
    b.setup()
    assert a.states.hash == b.states.hash and a.states.round == 0
    assert a.eval_page_ids == b.eval_page_ids and not set(a.eval_page_ids) - a.excluded


def test_restart_resumes_from_the_local_checkpoint(tmp_path, chain):
    node = make_node(tmp_path, chain)
    node.setup()
    moved = node.states.state.clone()
    moved.theta.add_(0.01)
    save_checkpoint(node.files.state, moved, 5)

    restarted = make_node(tmp_path, chain)
    restarted.setup()
    assert restarted.states.hash == moved.state_hash() and restarted.states.round == 5
    assert torch.equal(restarted.states.state.theta, moved.theta)


def test_damaged_checkpoint_falls_back_to_a_fresh_state(tmp_path, chain):
    node = make_node(tmp_path, chain)
    node.setup()
    fresh_hash = node.states.hash
    node.files.state.parent.mkdir(parents=True, exist_ok=True)
    node.files.state.write_bytes(b"not a checkpoint")
    restarted = make_node(tmp_path, chain)
    restarted.setup()
    assert restarted.states.hash == fresh_hash and restarted.states.round == 0


def test_payloads_are_embargoed_until_the_reveal_time(tmp_path, chain):
    import asyncio
    import time

    node = make_node(tmp_path, chain)
    now = time.time()
    current = node.schedule.round_at(now)
    node.pool.payloads[b"d" * 32] = (current + 1, b"next round's payload")  # its reveal is in the future
    node.pool.payloads[b"e" * 32] = (current - 2, b"an older round's payload")  # revealed long ago
    assert asyncio.run(node.serve("payload", b"d" * 32)) is None
    assert asyncio.run(node.serve("payload", b"e" * 32)) == b"an older round's payload"
    assert asyncio.run(node.serve("payload", b"x" * 32)) is None


def test_restart_keeps_the_error_feedback_residual(tmp_path, chain):
    from node.checkpoint.state import save_feedback

    node = make_node(tmp_path, chain)
    node.setup()
    residual = torch.randn(node.numel)
    save_feedback(node.files.feedback, {"residual": residual})
    restarted = make_node(tmp_path, chain)
    restarted.setup()
    assert torch.equal(restarted.feedback.residual, residual)
    restarted.files.feedback.write_bytes(b"junk")  # damaged: ignored, not fatal
    again = make_node(tmp_path, chain)
    again.setup()
    assert again.feedback.residual is None


def test_restart_keeps_the_inner_optimizer(tmp_path, chain):
    from node.checkpoint.state import save_inner

    node = make_node(tmp_path, chain)
    node.setup()
    pages = node.corpus.pages(list(range(4)))
    node.trainer.train(pages, steps=3, seed=1)
    save_inner(node.files.inner, node.trainer.state_dict())
    restarted = make_node(tmp_path, chain)
    restarted.setup()
    assert restarted.trainer.step_count == 3  # warmup goes on where it stopped
    saved = node.trainer.optimizer.state_dict()["state"]
    loaded = restarted.trainer.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[i]["exp_avg"], loaded[i]["exp_avg"]) for i in saved)

    restarted.files.inner.write_bytes(b"junk")  # damaged: ignored, not fatal
    assert make_node(tmp_path, chain).setup() is None
    state = node.trainer.state_dict()
    first = next(iter(state["optimizer"]["state"]))
    state["optimizer"]["state"][first]["exp_avg"] = torch.zeros(3)  # another model's shapes
    save_inner(node.files.inner, state)
    again = make_node(tmp_path, chain)
    again.setup()
    assert again.trainer.step_count == 0
