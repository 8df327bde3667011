"""torchrun ranks inside one node, the parts one process can check: the row split, the
parallel kind, activation checkpointing. Real gloo groups: tests/integration/test_distributed.py."""

import pytest
import torch

from node.trainer import params
from node.trainer.distributed import parallel_kind
from node.trainer.inner import InnerTrainer
from node.trainer.model import node_model, recomputes_activations
from node.trainer.shard import Shard
from tests.support.corpora import Pages


def test_rows_split_every_batch_row_once():
    for world in (1, 2, 3, 8):
        for batch in range(world, 20):
            parts = [Shard(r, world).rows(batch) for r in range(world)]
            assert [i for s in parts for i in range(batch)[s]] == list(range(batch))
            sizes = [s.stop - s.start for s in parts]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        Shard(0, 4).rows(3)
    with pytest.raises(ValueError):
        Shard(2, 2)


def test_parallel_kind():
    assert parallel_kind("auto", 1_000_000) == "ddp"
    assert parallel_kind("auto", 970_000_000) == "fsdp"
    assert parallel_kind("ddp", 970_000_000) == "ddp"


def test_activation_checkpointing_recomputes_without_changing_the_result():
    assert not recomputes_activations("auto", torch.device("cpu"))
    assert recomputes_activations("auto", torch.device("cuda")) and not recomputes_activations("off", torch.device("cuda"))
    trained = []
    for setting in ("off", "on"):
        model = node_model("tiny", 0, torch.device("cpu"), setting)
        assert model.model.gradient_checkpointing == (setting == "on")
        InnerTrainer(model, lr=1e-3, batch_size=4, seq_len=32).train(Pages().pages([0, 1]), 2, seed=0)
        trained.append(params.flatten(model))
    assert torch.equal(*trained)
