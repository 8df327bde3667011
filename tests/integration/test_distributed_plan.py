"""The plan's inner factor through a node's torchrun ranks: every rank steps at the factor rank 0 sends.

A real 2-process gloo group (spawned as torchrun would), for DDP and FSDP2, against the
single-process trainer at the same factor. Under FSDP2 each rank steps its own shard of
the weights, so a rank at another factor shows up in the gathered weights (under DDP rank
0's copy is the one gathered, and every rank is reloaded from it each round).
"""

import os
from pathlib import Path

import torch

from node.config import TrainSpec
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.inner import InnerTrainer
from node.trainer.model import build_model
from tests.support import spawn_ranks
from tests.support.corpora import Pages

SPEC = TrainSpec(batch_size=4, seq_len=32, lr=1e-3, warmup_steps=0)
PAGE_IDS = [0, 2, 3]
FACTOR = 0.5


def _rank_main(rank: int, port: int, out: str) -> None:
    from node.trainer.distributed import RankedTrainer, join_ranks

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    group = join_ranks(torch.device("cpu"), round_seconds=30.0)
    theta = params.flatten(build_model("tiny", 5))
    for kind in ("ddp", "fsdp"):
        ranked = RankedTrainer(group, build_model("tiny", rank), SPEC, kind, Pages(), Path(out) / kind)
        if rank > 0:
            assert ranked.serve() == 0
            continue
        _, trained = ranked.train(theta, PAGE_IDS, seed=3, steps=3, deadline=None, lr_factor=FACTOR)
        torch.save(trained, Path(out) / f"{kind}.pt")
        ranked.finish(OuterState(theta=trained, momentum=torch.zeros_like(trained)), round_=1)


def _single(factor: float) -> torch.Tensor:
    model = build_model("tiny", 5)
    trainer = InnerTrainer(
        model, lr=SPEC.lr, weight_decay=SPEC.weight_decay, warmup_steps=0, batch_size=SPEC.batch_size, seq_len=SPEC.seq_len
    )
    trainer.train(Pages().pages(PAGE_IDS), 3, seed=3, lr_factor=factor)
    return params.flatten(model)


def test_every_rank_trains_at_the_factor_rank_0_sends(tmp_path):
    assert spawn_ranks(_rank_main, str(tmp_path)) == [0, 0]
    torch.set_num_threads(1)
    theta = params.flatten(build_model("tiny", 5))
    at_factor, at_peak = _single(FACTOR) - theta, _single(1.0) - theta
    assert float((at_peak - at_factor).norm() / at_factor.norm()) > 0.1  # the factor matters at this scale
    for kind in ("ddp", "fsdp"):
        update = torch.load(tmp_path / f"{kind}.pt") - theta
        assert float((update - at_factor).norm() / at_factor.norm()) < 1e-3, kind  # up to the order of float sums
