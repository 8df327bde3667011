"""The signer's collect loop: what it signs, and when it must not."""

import asyncio
import time
from types import SimpleNamespace

import torch

from node.chain import Neuron
from node.config import OuterSpec
from node.outer.contributions import Collected
from node.round.collect import Collector
from protocol.schedule import Deadlines, RoundSchedule


class AllBanned:
    """A scoreboard on which every hotkey was caught (as the losing half of a partition is, as stale)."""

    def banned(self, hotkey, round_):
        return True

    def known(self, hotkey):
        return True

    def score(self, hotkey):
        return 0.0


class NoVerdicts:
    """A scoreboard that has checked nobody: everyone is a newcomer, nobody is banned."""

    def banned(self, hotkey, round_):
        return False

    def known(self, hotkey):
        return False

    def score(self, hotkey):
        return 0.0


async def nothing(*args):
    return []


def test_a_signer_whose_every_contributor_is_banned_signs_nothing_and_the_round_ends_without_a_manifest():
    """An empty mean used to raise inside the signer and fail the whole round, so θ_{r+1} was never settled
    and the next rounds could not train (found by the partition scenario, devnet/faults/)."""
    neurons = [
        Neuron(uid=0, hotkey="signer", stake=10.0, validator_permit=True),
        Neuron(uid=1, hotkey="other", stake=1.0, validator_permit=True),
    ]
    chain = SimpleNamespace(neurons=lambda: neurons)
    collected = Collected(metas={"other": SimpleNamespace(trained_from=b"h")}, vectors={"other": torch.ones(4)})
    pool = SimpleNamespace(poll=lambda r: asyncio.sleep(0, collected))
    board = SimpleNamespace(
        keypair=SimpleNamespace(ss58_address="signer"), manifests=nothing, online=nothing, swarm=SimpleNamespace(bindings=None)
    )
    verification = SimpleNamespace(read_validators_verdicts=lambda *a: asyncio.sleep(0))
    schedule = RoundSchedule(genesis=time.time() - 10.0, round_seconds=2.0)  # round 0's windows are all past
    states = SimpleNamespace(round=0, at=lambda r: SimpleNamespace(hash=b"h"))
    collector = Collector(board, chain, pool, schedule, states, AllBanned(), verification, OuterSpec(), outer=None)

    assert asyncio.run(collector.until_manifest(0, base=SimpleNamespace(), deadlines=schedule.deadlines(0))) is None


def test_the_first_signer_does_not_sign_early_without_a_contributor_the_last_round_merged():
    """Rank 0 may sign before its slot once everyone online is in. Under the live fuzzer the DHT's "online"
    showed only the signer itself, which then signed every round with its own contribution alone; it now
    also waits for everyone the last round merged."""
    neurons = [
        Neuron(uid=0, hotkey="signer", stake=10.0, validator_permit=True),
        Neuron(uid=1, hotkey="other", stake=1.0, validator_permit=True),
    ]
    chain = SimpleNamespace(neurons=lambda: neurons)
    collected = Collected(metas={"signer": SimpleNamespace(trained_from=b"h")}, vectors={"signer": torch.ones(4)})
    pool = SimpleNamespace(poll=lambda r: asyncio.sleep(0, collected))

    async def online():
        return [SimpleNamespace(hotkey="signer", peer_id=b"p")]

    async def peer_of(hotkey):
        return b"p"

    board = SimpleNamespace(
        keypair=SimpleNamespace(ss58_address="signer"),
        manifests=nothing,
        online=online,
        swarm=SimpleNamespace(bindings=SimpleNamespace(peer_of=peer_of)),
    )
    verification = SimpleNamespace(read_validators_verdicts=lambda *a: asyncio.sleep(0))
    schedule = RoundSchedule(genesis=time.time(), round_seconds=600.0)  # the signing slot is minutes away
    collector = Collector(
        board,
        chain,
        pool,
        schedule,
        SimpleNamespace(round=1, at=lambda r: SimpleNamespace(hash=b"h")),
        NoVerdicts(),
        verification,
        OuterSpec(),
        outer=None,
    )
    collector.merged[0] = frozenset({"signer", "other"})
    soon = Deadlines(start=0, train_end=0, reveal=0, collect_end=0, manifest_end=0, end=time.time() + 1.5)

    assert asyncio.run(collector.until_manifest(1, base=SimpleNamespace(), deadlines=soon)) is None


def test_a_contribution_not_trained_from_the_signers_state_is_left_out_and_a_stale_verdict_does_not_ban():
    """After a partition heals, each half's work reads as stale to the other half's validators. It must not
    be merged, but banning its honest authors left nobody to merge (partition scenario)."""
    from node.round.manifest import choose_entries
    from node.verifier.scores import Scoreboard
    from tests.support.records import verification_record

    neurons = {h: Neuron(uid=i, hotkey=h, stake=1.0, validator_permit=True) for i, h in enumerate(("a", "b"))}
    metas = {h: SimpleNamespace(digest=bytes([i]) * 32) for i, h in enumerate(neurons)}
    collected = Collected(metas=metas, vectors={h: torch.ones(2) for h in neurons})
    assert [e.hotkey for e in choose_entries(NoVerdicts(), collected, neurons, 3, OuterSpec(), {"a"})] == ["a"]

    board = Scoreboard()
    board.add(verification_record(b"\x01" * 32, "v", "b", 2, "fail", (("stale", 1.0),)))
    board.add(verification_record(b"\x01" * 32, "v", "a", 2, "fail", (("stale", 0.0),)))
    assert not board.banned("b", 3) and board.banned("a", 3)


def test_the_signer_says_why_each_expected_contributor_is_left_out():
    """What an operator reads when a round merges fewer contributions than it should (the live fuzzer's
    rounds were first diagnosed from these lines)."""
    collected = Collected(
        metas={h: SimpleNamespace() for h in ("chosen", "stale", "unpicked")},
        vectors={h: torch.ones(2) for h in ("chosen", "stale", "unpicked")},
        first_seen=dict.fromkeys(("chosen", "stale", "unpicked", "fetching", "lost", "cheat"), 0.0),
        pending={"fetching": None},
        refused={"cheat"},
    )
    collector = Collector(*(None,) * 7, OuterSpec(), outer=None)
    collector.merged[4] = frozenset({"chosen", "silent"})
    entries = (SimpleNamespace(hotkey="chosen"),)
    assert collector._left_out(collected, entries, {"chosen", "unpicked"}, 5) == {
        "cheat": "announcement or payload refused",
        "fetching": "payload still being fetched",
        "lost": "payload not fetched",
        "silent": "no announcement seen",
        "stale": "trained from another state",
        "unpicked": "not selected (score or gather size)",
    }
