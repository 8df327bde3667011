"""One real `gradswarm node run` alone on its own dev chain, with its HTTP status server on a free port.

The node is its own validator (the only hotkey, staked), so it signs its own manifests, evaluates,
and writes a round report per round: what the status page and its test look at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LoneNode:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT (no trailing slash)
    data_dir: Path
    log: Path
    hotkey: str

    def status(self, timeout: float = 5.0) -> dict:
        """GET /status as JSON."""
        with urllib.request.urlopen(self.url + "/status", timeout=timeout) as response:
            return json.loads(response.read())

    def reports(self) -> list[dict]:
        path = self.data_dir / "rounds.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def wait_for_reports(self, n: int, timeout: float) -> list[dict]:
        """Block until /status carries at least `n` round reports (fails with the node's log if it died)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"the node exited with {self.process.returncode}:\n{self.log_tail()}"
            try:
                reports = self.status()["reports"]
                if len(reports) >= n:
                    return reports
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, f"no {n} round reports after {timeout:.0f} s:\n{self.log_tail()}"
            time.sleep(0.5)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_lone_node(
    folder: Path,
    *,
    rounds: int = 3,
    round_seconds: float = 12.0,
    inner_steps: int = 10,
    boot_seconds: float = 15.0,
    corpus_cache: Path | None = None,
) -> LoneNode:
    """Start the node (returns at once; see LoneNode.wait_for_reports). Round 0 begins `boot_seconds`
    of dev-chain blocks from now; the process exits after `rounds` rounds (0 .. rounds - 1)."""
    from node.chain import DevChain
    from node.config import ChainSpec, NodeConfig, RunSpec, ScheduleSpec, render_run_file
    from node.data.sources import open_corpus
    from node.fsutil import atomic_write
    from node.keys import new_hotkey

    folder.mkdir(parents=True, exist_ok=True)
    cache = corpus_cache or folder / "corpus"
    chain = DevChain.create(folder / "chain.sqlite", block_time=1.0, max_validators=1)
    key = new_hotkey("lone", "default", folder / "wallets", seed=b"\x16" * 32, overwrite=True)
    chain.register(key.ss58_address)
    chain.add_stake(key.ss58_address, 100.0)
    spec = RunSpec(name="lone-status")
    corpus = open_corpus(spec, cache)
    spec = replace(
        spec,
        data=replace(spec.data, digest=corpus.digest),
        train=replace(spec.train, inner_steps=inner_steps),
        chain=ChainSpec(kind="dev", path=str(folder / "chain.sqlite")),
        schedule=ScheduleSpec(start_block=chain.block() + int(boot_seconds), round_seconds=round_seconds),
    )
    port = free_port()
    node = NodeConfig(
        data_dir=str(folder / "node"),
        wallet="lone",
        wallet_root=str(folder / "wallets"),
        torch_threads=1,
        evaluate=True,
        corpus_cache=str(cache),
        http=f"127.0.0.1:{port}",
    )
    config = folder / "run.toml"
    atomic_write(config, render_run_file(spec, node).encode())
    log = folder / "node.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", "run", "--config", str(config), "--rounds", str(rounds - 1)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return LoneNode(process, f"http://127.0.0.1:{port}", folder / "node", log, key.ss58_address)
