"""One real `gradswarm node run` alone on its own dev chain, with its HTTP status server on a free port.

The node is its own validator (the only hotkey, staked), so it signs its own manifests, evaluates,
and writes a round report per round: what the status page and its test look at.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
    of dev-chain blocks from now; the process runs rounds 0 .. rounds - 1, then exits."""
    from devnet import lone
    from node.config import RunSpec, TrainSpec

    spec = RunSpec(name="lone-status", train=TrainSpec(inner_steps=inner_steps))
    run = lone.prepare(
        folder,
        spec,
        corpus_cache or folder / "corpus",
        boot_seconds=boot_seconds,
        round_seconds=round_seconds,
        http=True,
        seed=b"\x16" * 32,
    )
    log = folder / "node.log"
    return LoneNode(lone.start(run, rounds, log), run.url, run.data_dir, log, run.hotkey)
