"""A node's torchrun ranks: every GPU of the node trains the same model, rank 0 alone faces the swarm.

`gradswarm node run` started by torchrun (or with `--nproc N`, which starts
torchrun itself) runs one process per rank. Rank 0 is the node: it runs
SwarmNode and does all DHT, p2p, chain and verifier work. The other ranks
only compute: they wait for rank 0's commands on a CPU (gloo) group and run
each one together with rank 0, as a collective:

- ``_load``: the weights θ are broadcast from rank 0 into every rank's model
  (the outer update, once per round; a heartbeat when nothing changed);
- ``_train``: the H inner steps, DDP or FSDP2, each rank computing its rows of
  every batch (node/trainer/shard.py), at the round's lr factor (every rank the
  same, as rank 0 sends it); rank 0 receives the full trained weights;
- ``_evaluate``: held-out loss, the windows split over the ranks;
- ``_finish``: every rank writes the state hash of what it holds, then stops.

Backends: gloo on CPU; on CUDA nccl for tensors and gloo for commands. A rank
that dies fails the collectives of the others: rank 0 raises ``RankFailure``,
which stops the node, and torchrun (max-restarts 0) stops the remaining ranks;
a restarted node resumes from its last checkpoint like a single-process one.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from node.config import TrainSpec
from node.data.corpus import Corpus
from node.fsutil import atomic_write
from node.outer.optimizer import OuterState
from node.trainer import params
from node.trainer.inner import InnerTrainer, _autocast, _lm_loss, eval_windows
from node.trainer.shard import Shard

log = logging.getLogger(__name__)

FSDP_MIN_PARAMS = 500_000_000  # "auto": from here on FSDP2 shards the model, optimizer state and gradients
STEP_TIMEOUT = timedelta(minutes=10)  # a training collective that takes longer means a rank is stuck
MIN_IDLE_TIMEOUT = 1800.0  # seconds a rank may wait for rank 0's next command (rank 0 sends one every round)


class RankFailure(RuntimeError):
    """A call on the node's ranks failed: a rank died or hangs, or raised, and the others are left
    mid-collective (gloo reports a lost peer as a plain RuntimeError). Fatal to the node."""


@dataclass(frozen=True)
class RankGroup:
    """This process's place among its node's ranks, as torchrun's environment tells it."""

    rank: int
    world: int
    device: torch.device
    control: dist.ProcessGroup  # gloo: commands and rank 0's small decisions, whatever the device


def join_ranks(device: torch.device, round_seconds: float) -> RankGroup | None:
    """Join the node's process group when torchrun started more than one rank; None otherwise.

    With one rank nothing changes: no process group, the plain single-process path.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo", timeout=STEP_TIMEOUT)
    idle = timedelta(seconds=max(MIN_IDLE_TIMEOUT, 4 * round_seconds))
    control = dist.new_group(backend="gloo", timeout=idle)
    return RankGroup(rank=rank, world=world, device=device, control=control)


def parallel_kind(setting: str, numel: int) -> str:
    if setting == "auto":
        return "fsdp" if numel >= FSDP_MIN_PARAMS else "ddp"
    return setting


class RankedTrainer:
    """The model and inner optimizer as every rank holds them, and the collectives on them.

    Every rank constructs one with the same arguments. Rank 0 calls the public
    methods; the others call ``serve`` and mirror each call.
    """

    def __init__(self, group: RankGroup, model: torch.nn.Module, train: TrainSpec, parallel: str, corpus: Corpus, data_dir: Path):
        self.group = group
        self.module = model  # unwrapped: its parameter names define the flat layout
        self.kind = parallel_kind(parallel, params.numel(model))
        self.model = self._wrap(model)
        self.corpus = corpus
        self.seq_len = train.seq_len
        self.batch_size = train.batch_size
        self.data_dir = data_dir
        self.shard = Shard(group.rank, group.world, group.control)
        self.trainer = InnerTrainer.from_spec(self.model, train, group.device, shard=self.shard)
        self._held: tuple[torch.Tensor, int] | None = None  # the θ every rank's model holds, and its version then
        self._turn = threading.RLock()
        log.info("rank %d of %d: %s on %s", group.rank, group.world, self.kind, group.device)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.kind == "ddp":
            device_ids = [self.group.device.index] if self.group.device.type == "cuda" else None
            return DistributedDataParallel(model, device_ids=device_ids)
        # the mesh on this rank's device type: FSDP2's default would pick CUDA whenever the machine has it
        mesh = init_device_mesh(self.group.device.type, (self.group.world,))
        for layer in model.model.layers:  # one all-gather per decoder layer, then the rest
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model

    # ------------------------------------------------------------------ rank 0

    # Rank 0 calls these from more than one thread (round r's exchange evaluates while round r+1
    # trains), and each is a sequence of collectives the other ranks mirror: one at a time, whole.

    def train(
        self, theta: torch.Tensor, page_ids: list[int], seed: int, steps: int, deadline: float | None, lr_factor: float = 1.0
    ) -> tuple[float, torch.Tensor]:
        """Train all ranks from θ at `lr_factor` times the peak lr; the mean loss and the trained weights (flat, CPU)."""
        with self._turn:
            self.load_everywhere(theta)
            loss, trained = self._call("_train", page_ids, seed, steps, deadline, float(lr_factor))
            self._held = None  # the models now hold the trained weights
            return loss, trained

    def evaluate(self, theta: torch.Tensor, page_ids: list[int]) -> float:
        with self._turn:
            self.load_everywhere(theta)
            return self._call("_evaluate", page_ids)

    def load_everywhere(self, theta: torch.Tensor) -> None:
        """Every rank's model holds θ afterwards. Rank 0 calls it every round, so the others hear from it."""
        with self._turn:
            unchanged = self._held is not None and self._held[0] is theta and self._held[1] == theta._version
            self._call("_load", None if unchanged else theta)
            self._held = (theta, theta._version)

    def finish(self, state: OuterState, round_: int) -> None:
        """Every rank writes the state hash of what it holds (ranks/rank<N>.json), then the others exit."""
        with self._turn:
            self.load_everywhere(state.theta)
            self._call("_finish", state.momentum, round_)

    def _call(self, name: str, *args):
        try:
            dist.broadcast_object_list(
                [(name, [None if isinstance(a, torch.Tensor) else a for a in args])], src=0, group=self.group.control
            )
            return getattr(self, name)(*args)
        except Exception as e:
            raise RankFailure(f"{name} on this node's ranks failed: {e}") from e

    # ------------------------------------------------------------------ other ranks

    def serve(self) -> int:
        """Mirror rank 0's calls until it finishes (0) or is gone (1)."""
        while True:
            command: list = [None]
            try:
                dist.broadcast_object_list(command, src=0, group=self.group.control)
                name, args = command[0]
                if name not in ("_load", "_train", "_evaluate", "_finish"):
                    raise ValueError(f"unknown command {name!r}")
                getattr(self, name)(*args)
            except Exception:
                log.exception("rank %d: stopping: this rank failed, or lost rank 0 or another rank", self.group.rank)
                return 1
            if name == "_finish":
                return 0

    # ------------------------------------------------------------------ collectives (every rank)

    def _load(self, theta: torch.Tensor | None) -> None:
        """θ (on rank 0; None elsewhere) broadcast into every rank's model, or nothing if unchanged."""
        changed = torch.tensor([theta is not None], dtype=torch.uint8)
        dist.broadcast(changed, src=0, group=self.group.control)
        if not changed.item():
            return
        full = params.as_state_dict(self.module, theta) if self.group.rank == 0 else {}
        set_model_state_dict(self.model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

    def _train(
        self, page_ids: list[int], seed: int, steps: int, deadline: float | None, lr_factor: float = 1.0
    ) -> tuple[float, torch.Tensor | None]:
        loss = self.trainer.train(self.corpus.pages(page_ids), steps, seed, deadline, lr_factor)
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return loss, (params.from_state_dict(full) if self.group.rank == 0 else None)

    @torch.no_grad()
    def _evaluate(self, page_ids: list[int]) -> float:
        """Mean held-out loss; each rank takes an equal run of windows, so all make the same forward
        calls (FSDP2 gathers parameters collectively); padding past the end counts nothing."""
        windows = eval_windows(self.corpus.pages(page_ids), self.seq_len)
        n, device = windows.shape[0], self.group.device
        per_rank = -(-n // self.group.world)
        index = torch.arange(self.group.rank * per_rank, (self.group.rank + 1) * per_rank)
        weight = (index < n).to(torch.float64)
        mine = windows[index.clamp(max=n - 1)]
        total = torch.zeros((), dtype=torch.float64, device=device)
        self.model.eval()
        try:
            for i in range(0, per_rank, self.batch_size):
                batch = mine[i : i + self.batch_size].to(device)
                with _autocast(device):
                    rows = _lm_loss(self.model, batch, reduction="none").view(batch.shape[0], -1).sum(dim=1)
                total += (rows.to(torch.float64) * weight[i : i + self.batch_size].to(device)).sum()
        finally:
            self.model.train()
        return float(self.shard.total(total).item()) / (n * self.seq_len)

    def _finish(self, momentum: torch.Tensor | None, round_: int) -> None:
        if momentum is None:
            momentum = torch.empty(params.numel(self.module), dtype=torch.float32)
        dist.broadcast(momentum, src=0, group=self.group.control)
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True))  # this rank's own copy
        theta = params.from_state_dict({k: v.cpu() for k, v in full.items()})
        record = {
            "rank": self.group.rank,
            "world": self.group.world,
            "round": round_,
            "state_hash": OuterState(theta=theta, momentum=momentum).state_hash().hex(),
        }
        atomic_write(self.data_dir / "ranks" / f"rank{self.group.rank}.json", json.dumps(record).encode())


def launch(nproc: int, argv: list[str]) -> int:
    """Run `python -m node.cli <argv>` as `nproc` ranks under torchrun (torch.distributed.run).

    No restarts: a rank that dies stops the node, with the failed rank named;
    running it again resumes from the last checkpoint.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--module", "node.cli", *argv])
    try:
        run(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        print(
            f"error: rank {rank} of this node (pid {failure.pid}) {how}; the node stopped. "
            "Run it again to resume from its last checkpoint.",
            file=sys.stderr,
        )
        return 1
    return 0


def serve_rank(spec, config, group: RankGroup) -> int:
    """A rank other than 0: the same model, corpus and trainer as rank 0 builds, then mirror its calls."""
    from node.data.sources import open_corpus
    from node.trainer.model import node_model

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    data_dir = Path(config.data_dir)
    corpus = open_corpus(spec, Path(config.corpus_cache or data_dir / "corpus"))
    model = node_model(spec.model.preset, spec.model.seed, group.device, config.activation_checkpointing, spec.model.vocab_size)
    return RankedTrainer(group, model, spec.train, config.parallel, corpus, data_dir).serve()
