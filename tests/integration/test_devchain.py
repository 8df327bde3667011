"""The dev chain's file shared by two processes that race to register the same hotkeys."""

import multiprocessing

import pytest

from node.chain import DevChain
from tests.support import keypair

pytestmark = pytest.mark.chain(block_time=1.0, max_validators=2)  # the `chain` fixture's


def _register_all(chain: DevChain, hotkeys: list[str], barrier, results) -> None:
    barrier.wait()
    results.put([(hotkey, chain.register(hotkey)) for hotkey in hotkeys])


def test_concurrent_registration_from_two_processes(chain):
    hotkeys = [keypair(f"node{i}").ss58_address for i in range(60)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    # Both processes register every hotkey, in opposite orders and starting
    # together, so they race for each uid and re-register each other's.
    procs = [ctx.Process(target=_register_all, args=(chain, order, barrier, results)) for order in (hotkeys, hotkeys[::-1])]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    uid_of = {n.hotkey: n.uid for n in chain.neurons()}
    assert sorted(uid_of.values()) == list(range(len(hotkeys)))
    assert set(uid_of) == set(hotkeys)
    for outcome in outcomes:
        assert dict(outcome) == uid_of
