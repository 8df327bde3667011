"""The ChainView contract's harnesses: the embedded dev chain, and the Bittensor adapter on the
in-memory substrate of fake_subtensor.py (the `harness` fixture of tests/conftest.py runs each test on both).

A harness does to each chain what its operator and the chain itself would:
register and stake (btcli on a real subnet), run an epoch (a real subnet
recomputes permits and incentive once per tempo; the dev chain does it on
every read), let blocks pass, and take the chain away (an RPC endpoint that
refuses connections; a dev-chain file that has vanished).
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from bittensor.sp_core import Keypair

from node.chain import ChainView, DevChain, RefreshWindows, RetryPolicy
from node.chain import devchain as devchain_module
from node.chain.bittensor_adapter import BittensorChain
from tests.support import keypair
from tests.support.fake_subtensor import FakeSubstrate

MAX_VALIDATORS = 2
NETUID = 5
# Short delays, so that writes queued during an outage are retried within the test.
POLICY = RetryPolicy(first_delay=0.05, max_delay=0.2, stale_wait=1.0, first_wait=5.0)
# The harnesses change the chain behind the view's back (an operator's btcli, an epoch, an
# outage), so every read asks the chain; the refresh windows have tests of their own.
FRESH = RefreshWindows.uniform(0)
A, B, C, D = (keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave"))


class DevHarness:
    commit_reveal = False

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock = 1000.0
        monkeypatch.setattr(devchain_module, "time", types.SimpleNamespace(time=lambda: self.clock))
        self.path = tmp_path / "chain.db"
        DevChain.create(self.path, block_time=1.0, max_validators=MAX_VALIDATORS)
        self.chain = DevChain(self.path, policy=POLICY, refresh=FRESH)

    def register(self, hotkey: str) -> None:
        self.chain.register(hotkey)

    def stake(self, hotkey: str, amount: float) -> None:
        self.chain.add_stake(hotkey, amount)

    def epoch(self) -> None:
        pass  # permits and incentive are computed on every read

    def advance(self, blocks: int) -> None:
        self.clock += blocks * self.chain.block_time

    def outage(self, down: bool) -> None:
        # Every call opens the file afresh, so moving it away is a real outage.
        for suffix in ("", "-wal", "-shm"):
            here, away = Path(f"{self.path}{suffix}"), Path(f"{self.path}{suffix}.away")
            src, dst = (here, away) if down else (away, here)
            if src.exists():
                src.rename(dst)


class FakeHarness:
    """Needs the `btcli_cache` fixture (the `harness` fixture asks for it)."""

    commit_reveal = True

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = FakeSubstrate(NETUID, max_validators=MAX_VALIDATORS)
        self.chain = BittensorChain("local", NETUID, substrate=self.fake, policy=POLICY, refresh=FRESH)

    def register(self, hotkey: str) -> None:
        self.fake.register(hotkey)

    def stake(self, hotkey: str, amount: float) -> None:
        self.fake.stake(hotkey, amount)

    def epoch(self) -> None:
        self.fake.epoch()

    def advance(self, blocks: int) -> None:
        self.fake.block += blocks

    def outage(self, down: bool) -> None:
        self.fake.down = down


HARNESSES = {"devchain": DevHarness, "bittensor": FakeHarness}


def validators(harness, stakes: dict[Keypair, float]) -> ChainView:
    """Register every key of ``stakes`` in order (uids 0, 1, ...), stake, run an epoch."""
    for k in stakes:
        harness.register(k.ss58_address)
    for k, amount in stakes.items():
        if amount:
            harness.stake(k.ss58_address, amount)
    harness.epoch()
    return harness.chain
