"""torchrun ranks inside one node (node/trainer/distributed.py, node/trainer/shard.py).

Fast: a real 2-process gloo group (spawned here, as torchrun would) against
the single-process trainer, for DDP and FSDP2, plus a rank that dies. Slow: a
2-node swarm of 2 ranks each, and a node that loses a rank and resumes from its
checkpoint. The row split and the rest that one process can check are in
tests/unit/test_distributed.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from node.config import TrainSpec
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.inner import InnerTrainer, eval_loss
from node.trainer.model import build_model
from tests.support import spawn_ranks
from tests.support.corpora import Pages

REPO = Path(__file__).resolve().parents[2]
SPEC = TrainSpec(batch_size=5, seq_len=32, lr=1e-3, warmup_steps=0)  # 5 rows over 2 ranks: 2 and 3
PAGE_IDS = [0, 2, 3]


def _rank_main(rank: int, port: int, out: str, scenario: str) -> None:
    """One rank of a 2-rank node, set up the way torchrun sets it up."""
    from node.trainer.distributed import RankedTrainer, RankFailure, join_ranks

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    group = join_ranks(torch.device("cpu"), round_seconds=30.0)
    theta = params.flatten(build_model("tiny", 5))  # what rank 0 holds; the other ranks start from other weights
    results = {}
    for kind in ("ddp", "fsdp") if scenario == "train" else ("ddp",):
        ranked = RankedTrainer(group, build_model("tiny", rank), SPEC, kind, Pages(), Path(out) / kind)
        if rank > 0:
            if scenario == "die":
                os._exit(7)  # dies while rank 0 asks it to train
            assert ranked.serve() == 0
            continue
        try:
            loss, trained = ranked.train(theta, PAGE_IDS, seed=3, steps=3, deadline=None)
        except RankFailure as e:
            results["failure"] = str(e)
            break
        evaluated = ranked.evaluate(trained, [1, 2])
        ranked.train(trained, PAGE_IDS, seed=4, steps=50, deadline=time.time())  # rank 0's clock stops every rank
        results[kind] = {"loss": loss, "eval": evaluated, "late_steps": ranked.trainer.last_steps}
        torch.save(trained, Path(out) / f"{kind}.pt")
        ranked.finish(OuterState(theta=trained, momentum=torch.full_like(trained, 0.5)), round_=7)
    if rank == 0:
        (Path(out) / "results.json").write_text(json.dumps(results))


def _run_ranks(tmp_path: Path, scenario: str) -> tuple[list[int | None], dict]:
    codes = spawn_ranks(_rank_main, str(tmp_path), scenario)
    results = tmp_path / "results.json"
    return codes, json.loads(results.read_text()) if results.exists() else {}


def test_two_gloo_ranks_train_like_one_process(tmp_path):
    codes, results = _run_ranks(tmp_path, "train")
    assert codes == [0, 0], codes
    # the reference: one process, the whole batch of every step
    torch.set_num_threads(1)
    model = build_model("tiny", 0)
    params.load_flat(model, params.flatten(build_model("tiny", 5)))
    trainer = InnerTrainer(
        model, lr=SPEC.lr, weight_decay=SPEC.weight_decay, warmup_steps=0, batch_size=SPEC.batch_size, seq_len=SPEC.seq_len
    )
    loss = trainer.train(Pages().pages(PAGE_IDS), 3, seed=3)
    theta = params.flatten(build_model("tiny", 5))
    single = params.flatten(model) - theta
    evaluated = eval_loss(model, Pages().pages([1, 2]), SPEC.seq_len, SPEC.batch_size)
    for kind in ("ddp", "fsdp"):
        got = results[kind]
        trained = torch.load(tmp_path / f"{kind}.pt")
        # the same update up to the order of float sums (a wrong split is off by tens of percent)
        error = float((trained - theta - single).norm() / single.norm())
        assert error < 1e-3, (kind, error)
        assert got["loss"] == pytest.approx(loss, rel=1e-5)
        assert got["eval"] == pytest.approx(evaluated, rel=1e-5)
        assert got["late_steps"] == 1
        # the weights broadcast at the end are what every rank holds
        expected = OuterState(theta=trained, momentum=torch.full_like(trained, 0.5)).state_hash().hex()
        for rank in (0, 1):
            record = json.loads((tmp_path / kind / "ranks" / f"rank{rank}.json").read_text())
            assert record == {"rank": rank, "world": 2, "round": 7, "state_hash": expected}


def test_a_rank_that_dies_fails_rank_0(tmp_path):
    codes, results = _run_ranks(tmp_path, "die")
    assert codes == [0, 7]
    assert "_load on this node's ranks failed" in results["failure"]


# ---------------------------------------------------------------------- slow: real swarms


@pytest.mark.slow
def test_two_nodes_of_two_ranks_end_with_one_state(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "demo", "--peers", "2", "--ranks-per-node", "2", "--rounds", "4", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("nodes/*/node.log")))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    summary = json.loads((tmp_path / "summary.json").read_text())
    final = set(summary["final_state_hashes"].values())
    assert len(summary["final_state_hashes"]) == 2 and len(final) == 1
    ranks = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("nodes/*/ranks/rank*.json"))]
    assert len(ranks) == 4 and {r["state_hash"] for r in ranks} == final
    assert summary["rank_state_hashes_agree"] is True
    evals = [e for e in summary["eval_loss"] if e is not None]
    assert evals[-1] < evals[0]


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]


def _rank_pid(agent: int, rank: int) -> int:
    for child in _children(agent):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return child
    raise LookupError(f"no rank {rank} under pid {agent}")


@pytest.mark.slow
def test_node_that_loses_a_rank_stops_and_resumes_from_its_checkpoint(tmp_path):
    """A lone node (its own DHT, it signs its own manifests) of 2 ranks; rank 1 is killed in round 2; run again."""
    from devnet.demo import prepare
    from node.config import render_run_file
    from node.fsutil import atomic_write

    spec, (config,), _, _ = prepare(tmp_path, 1, round_seconds=20.0, adversaries=[])
    run_toml = Path(config.data_dir) / "run.toml"
    atomic_write(run_toml, render_run_file(spec, config).encode())
    command = [sys.executable, "-m", "node.cli", "node", "run", "--config", str(run_toml), "--nproc", "2", "--rounds", "5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    rounds_log = Path(config.data_dir) / "rounds.jsonl"
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and (not rounds_log.exists() or len(rounds_log.read_text().splitlines()) < 2):
            time.sleep(0.5)
        time.sleep(3)  # into round 2's training
        os.kill(_rank_pid(first.pid, 1), signal.SIGKILL)
        out, _ = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 1, out[-3000:]
    assert "rank 1 of this node" in out and "SIGKILL" in out, out[-3000:]
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from the local checkpoint of round 2" in second.stdout + second.stderr
    reports = [json.loads(line) for line in rounds_log.read_text().splitlines()]
    assert reports[-1]["round"] == 4 and reports[-1]["in_sync"]
    assert any("train_loss" in r for r in reports if r["round"] >= 3)  # it trained again after the restart
    hashes = {json.loads(p.read_text())["state_hash"] for p in Path(config.data_dir).glob("ranks/rank*.json")}
    assert hashes == {reports[-1]["state_hash"]}
