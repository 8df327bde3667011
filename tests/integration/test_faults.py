"""The fast fault scenarios, on a real swarm in network namespaces (devnet/faults/); the rest run with
`make test-faults`, which also records benchmarks/results/faults.json."""

from __future__ import annotations

import pytest

from devnet.faults.hosts import missing_tools
from devnet.faults.run import run_scenario
from devnet.faults.scenarios import SCENARIOS

WHY_NOT = missing_tools()


@pytest.mark.faults
@pytest.mark.skipif(bool(WHY_NOT), reason=f"the fault harness needs root and network namespaces: {WHY_NOT}")
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.fast], ids=lambda s: s.name)
def test_swarm_keeps_its_invariants_through_the_fault(scenario, tmp_path):
    result = run_scenario(scenario, tmp_path, seed=7)
    assert result.fault.notes or result.fault.targets, "the fault was not applied"
    assert result.passed, f"{result.checks}\n" + "\n".join(result.details)
