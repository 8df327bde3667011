"""One torchrun rank's part of its node's training: which rows of every batch it computes.

All ranks of a node draw the same batch from the same seeded generator and each
computes a contiguous, balanced slice of its rows. Each rank's loss is its
rows' summed token loss over the *whole* batch's token count, times the world
size, so the gradient that DDP or FSDP2 averages over ranks is exactly the
whole batch's mean gradient, however many ranks there are and however unevenly
the rows divide: the result depends on the rank count only through the order
of floating-point sums.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    rank: int
    world: int
    control: dist.ProcessGroup | None = None  # CPU (gloo) group for rank 0's decisions; None: the default group

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} outside a world of {self.world}")

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a batch: contiguous, sizes differ by at most one, none empty."""
        if batch_size < self.world:
            raise ValueError(f"a batch of {batch_size} rows cannot be split over {self.world} ranks")
        return slice(self.rank * batch_size // self.world, (self.rank + 1) * batch_size // self.world)

    def past(self, deadline: float) -> bool:
        """Rank 0's clock decides for every rank, so all ranks take the same number of steps."""
        flag = torch.tensor([time.time() >= deadline], dtype=torch.uint8)
        dist.broadcast(flag, src=0, group=self.control)
        return bool(flag.item())

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a per-rank partial (a loss share)."""
        dist.all_reduce(value)
        return value
