"""One node alone on its own dev chain: what the benchmarks and the status tests run when they need a real
`gradswarm node run` without a swarm (it trains, evaluates, signs its own manifests, checkpoints)."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from node.chain import DevChain
from node.config import ChainSpec, NodeConfig, RunSpec, ScheduleSpec, render_run_file
from node.data.sources import open_corpus
from node.fsutil import atomic_write
from node.keys import new_hotkey

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LoneRun:
    config: Path  # the run file: spec and [node]
    spec: RunSpec  # with the corpus digest, the chain and the schedule filled in
    node: NodeConfig
    hotkey: str
    round0_time: float  # wall time of round 0's start

    @property
    def url(self) -> str:
        return f"http://{self.node.http}"

    @property
    def data_dir(self) -> Path:
        return Path(self.node.data_dir)


def prepare(folder: Path, spec: RunSpec, cache: Path, *, boot_seconds: float, round_seconds: float, http: bool, seed: bytes) -> LoneRun:
    """A fresh dev chain under `folder` with one registered, staked hotkey (seeded) and its node's run file;
    round 0 starts `boot_seconds` of blocks from now; `http` gives the node a status server on a free port."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("chain.sqlite*"), folder / "node" / "rounds.jsonl", folder / "node" / "state.safetensors"]:
        stale.unlink(missing_ok=True)
    chain = DevChain.create(folder / "chain.sqlite", block_time=1.0, max_validators=1)
    key = new_hotkey("node", "default", folder / "wallets", seed=seed, overwrite=True)
    chain.register(key.ss58_address)
    chain.add_stake(key.ss58_address, 100.0)
    corpus = open_corpus(spec, cache)
    spec = replace(
        spec,
        data=replace(spec.data, digest=corpus.digest),
        chain=ChainSpec(kind="dev", path=str(folder / "chain.sqlite")),
        schedule=ScheduleSpec(start_block=chain.block() + int(boot_seconds), round_seconds=round_seconds),
    )
    node = NodeConfig(
        data_dir=str(folder / "node"),
        wallet="node",
        wallet_root=str(folder / "wallets"),
        torch_threads=1,
        evaluate=True,
        corpus_cache=str(cache),
        http=f"127.0.0.1:{free_port()}" if http else "",
    )
    config = folder / "run.toml"
    atomic_write(config, render_run_file(spec, node).encode())
    return LoneRun(config, spec, node, key.ss58_address, chain.genesis_time + spec.schedule.start_block * chain.block_time)


def start(run: LoneRun, rounds: int, log: Path) -> subprocess.Popen:
    """`gradswarm node run --rounds rounds` (it runs rounds 0 .. rounds - 1), its output into `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", "run", "--config", str(run.config), "--rounds", str(rounds)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
