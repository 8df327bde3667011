"""node/round/apply.py and the engine's apply-or-sync decision, without processes."""

import asyncio
from types import SimpleNamespace

import torch

from node.outer.aggregate import robust_mean
from node.outer.contributions import Collected
from node.outer.optimizer import OuterOptimizer, OuterState
from node.round.apply import apply_manifest, next_state
from node.round.engine import apply_or_sync
from node.round.manifest import Signed
from node.round.report import RoundReport
from node.round.states import StateBook
from protocol.messages import ContributionMeta, ManifestEntry, RoundManifest
from protocol.schedule import RoundSchedule

OUTER = OuterOptimizer(lr=1.0, momentum=0.0)


def vectors(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(32, generator=g) for _ in range(n)]


def test_next_state_is_the_outer_step_on_the_robust_mean_and_leaves_the_input_alone():
    base = OuterState.fresh(torch.ones(32))
    before = base.state_hash()
    vs, weights = vectors(3), [1.0, 0.5, 0.75]
    result = next_state(OUTER, base, vs, weights)
    expected = base.clone()
    OUTER.step(expected, robust_mean(vs, weights))
    assert result.state_hash() == expected.state_hash() and base.state_hash() == before
    assert next_state(OUTER, base, vs, weights).state_hash() == result.state_hash()  # the same bits every time


class Pool:
    """What apply reads of a ContributionPool: the round's decoded contributions and fetches of missing entries."""

    def __init__(self, collected: Collected, fetchable: dict[bytes, torch.Tensor]):
        self.collected, self.fetchable, self.fetched = collected, fetchable, []

    def round(self, r: int) -> Collected:
        return self.collected

    async def fetch_entry(self, entry: ManifestEntry, signer: str) -> torch.Tensor | None:
        self.fetched.append(entry.hotkey)
        return self.fetchable.get(entry.digest)


def meta(hotkey: str, digest: bytes) -> ContributionMeta:
    return ContributionMeta(
        run_id=b"r" * 32, round=0, hotkey=hotkey, peer_id=b"p", digest=digest, nbytes=1, codec="topk", trained_from=b"b" * 32
    )


def manifest_of(entries, base_hash=b"b" * 32, result=b"x" * 32) -> RoundManifest:
    return RoundManifest(
        run_id=b"r" * 32, round=0, hotkey="signer", base_state_hash=base_hash, entries=tuple(entries), result_state_hash=result
    )


def test_apply_uses_exactly_the_named_payloads_and_fetches_what_differs():
    base = OuterState.fresh(torch.zeros(32))
    va, vb, vb_named = vectors(3, seed=1)
    collected = Collected(metas={"a": meta("a", b"A" * 32), "b": meta("b", b"old" + b"B" * 29)}, vectors={"a": va, "b": vb})
    pool = Pool(collected, {b"B" * 32: vb_named})
    entries = [ManifestEntry("a", b"A" * 32, 1.0), ManifestEntry("b", b"B" * 32, 0.5)]
    result = asyncio.run(apply_manifest(pool, OUTER, base, manifest_of(entries)))
    assert pool.fetched == ["b"]  # we held another payload of b's than the manifest names
    assert result.state_hash() == next_state(OUTER, base, [va, vb_named], [1.0, 0.5]).state_hash()
    assert asyncio.run(apply_manifest(Pool(Collected(), {}), OUTER, base, manifest_of(entries))) is None  # cannot build it


def node_for(book: StateBook, applied: OuterState | None, synced: OuterState | None):
    """The parts of a node that apply_or_sync uses."""
    calls = []

    async def apply(manifest, base):
        calls.append("apply")
        return applied

    async def sync(manifest, deadline):
        calls.append("sync")
        if synced is not None:
            book.adopt(synced, manifest.round + 1)
        return synced is not None

    return SimpleNamespace(states=book, apply=apply, sync=sync, schedule=RoundSchedule(0.0, 10.0)), calls


def run(node, settled, r=0):
    report = RoundReport(round=r, hotkey="me", t_start=0.0)
    base = node.states.current
    manifest = asyncio.run(apply_or_sync(node, r, base, settled, node.schedule.deadlines(r), report))
    return manifest, report


def test_without_a_manifest_the_state_carries_over():
    book = StateBook(OuterState.fresh(torch.ones(32)))
    node, calls = node_for(book, None, None)
    before = book.hash
    manifest, report = run(node, None)
    assert manifest is None and calls == [] and book.round == 1 and book.hash == before and report.manifest_entries == 0


def test_a_manifest_that_reproduces_is_applied_and_one_that_does_not_is_synced():
    base_state = OuterState.fresh(torch.ones(32))
    good = next_state(OUTER, base_state, vectors(2), [1.0, 1.0])
    wrong = next_state(OUTER, base_state, vectors(2, seed=9), [1.0, 1.0])
    book = StateBook(base_state)
    entries = [ManifestEntry("a", b"A" * 32, 1.0)]
    signed = manifest_of(entries, base_hash=book.hash, result=good.state_hash())

    node, calls = node_for(book, good, None)
    _, report = run(node, signed)
    assert calls == ["apply"] and book.hash == good.state_hash() and book.round == 1 and report.resynced is None
    assert report.manifest_signer == "signer" and report.manifest_hotkeys == ["a"]

    book = StateBook(base_state)
    node, calls = node_for(book, wrong, good)  # our aggregate differs: fetch the signed state
    _, report = run(node, signed)
    assert calls == ["apply", "sync"] and book.hash == good.state_hash() and report.resynced is True

    book = StateBook(OuterState.fresh(torch.zeros(32)))  # we hold another θ_r: never apply, only sync
    node, calls = node_for(book, good, None)
    _, report = run(node, signed)
    assert calls == ["sync"] and report.resynced is False and book.round == 0


def test_the_signer_adopts_what_it_signed_without_applying_again():
    base_state = OuterState.fresh(torch.ones(32))
    result = next_state(OUTER, base_state, vectors(2), [1.0, 1.0])
    book = StateBook(base_state)
    node, calls = node_for(book, None, None)
    signed = manifest_of([], base_hash=book.hash, result=result.state_hash())
    manifest, _ = run(node, Signed(signed, result))
    assert manifest is signed and calls == [] and book.hash == result.state_hash() and book.round == 1
