"""Run one fault scenario end to end and judge it: the swarm, the fault, the invariants, one result row."""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from devnet.faults import invariants
from devnet.faults.hosts import Network
from devnet.faults.scenarios import Fault, Scenario
from devnet.faults.swarm import FaultSwarm
from node.trainer import params
from node.trainer.model import node_model

RESYNC_ROUNDS = 2  # a faulted node must hold the swarm's state again within this many rounds of the fault's end


@dataclass
class Result:
    scenario: str
    title: str
    seed: int
    passed: bool
    swarm_rounds_lost: int  # rounds in which the healthy nodes merged nothing on one state
    node_rounds_lost: int  # rounds the faulted nodes did not end on the swarm's state
    resync_seconds: float | None  # from the fault's end to the faulted nodes' first in-sync round report
    data_lost: int  # corrupt files plus verification records or audit inputs missing
    checks: dict[str, bool]
    fault: Fault
    details: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def run_scenario(scenario: Scenario, work: Path, seed: int) -> Result:
    started = time.time()
    out = work / f"{scenario.name}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    network = Network(tag=f"{os.getpid() % 1000:03d}", seed=seed)
    swarm = None
    try:
        swarm = FaultSwarm(out, network, scenario.peers, scenario.rounds, seed, scenario.nat)
        scenario.setup(swarm)
        swarm.start()
        fault = scenario.apply(swarm, random.Random(seed))
        swarm.finish()
        result = judge(scenario, swarm, fault, seed)
        orphans = network.leftovers(grace=10.0)
        result.checks["no process outlived its node"] = not orphans
        result.passed = result.passed and not orphans
        result.details += [f"left running in {ns}: {pids}" for ns, pids in orphans.items()]
    finally:
        if swarm is not None:
            swarm.finish(grace=0.0)
        network.close()
        for undo in reversed(swarm.cleanups if swarm else []):
            undo()
    result.wall_seconds = round(time.time() - started, 1)
    return result


def judge(scenario: Scenario, swarm: FaultSwarm, fault: Fault, seed: int) -> Result:
    names = list(swarm.nodes)
    reports = {name: swarm.reports(name) for name in names}
    healthy = [n for n in names if n not in fault.targets]
    reference = invariants.reference_hashes(reports, healthy)
    last = scenario.rounds - 1
    m = swarm.spec.model
    numel = params.numel(node_model(m.preset, m.seed, "cpu", "off", m.vocab_size))
    details: list[str] = []

    merged = {n: set(invariants.merged_rounds(reports[n], reference)) for n in healthy}
    swarm_lost = [r for r in range(scenario.rounds) if not any(r in merged[n] for n in healthy)]
    if swarm_lost:
        details.append(f"rounds no healthy node merged: {swarm_lost}")
    healthy_gaps = {n: sorted(set(range(scenario.rounds)) - merged[n] - set(swarm_lost)) for n in healthy}
    details += [f"{n} off the swarm's state in rounds {gaps}" for n, gaps in healthy_gaps.items() if gaps]

    fault_end = math.ceil(fault.end)
    node_lost, resync = 0, None
    in_sync = True
    for n in fault.targets:
        first = invariants.back_in_sync(reports[n], reference, fault_end, last)
        node_lost += sum(1 for r in range(scenario.rounds) if reports[n].get(r) is None or reports[n][r].state_hash != reference.get(r))
        if first is None or first - fault_end > RESYNC_ROUNDS:
            in_sync = False
            details.append(f"{n} not back in sync within {RESYNC_ROUNDS} rounds of round {fault_end} (first in sync: {first})")
        else:
            seconds = max(0.0, reports[n][first].t_end - swarm.at(fault.end))
            resync = max(resync or 0.0, round(seconds, 1))

    finals = {reports[n][last].state_hash if last in reports[n] else "" for n in names}
    data_lost = 0
    for n in names:
        files = invariants.check_files(swarm.data_dir(n), numel)
        lost = invariants.lost_audit_inputs(swarm.data_dir(n), reports[n], numel)
        data_lost += len(files.corrupt) + len(lost)
        details += [f"{n}: corrupt {c}" for c in files.corrupt] + [f"{n}: {x}" for x in lost]
    exits = {n: swarm.nodes[n].exits[-1:] for n in names}
    checks = {
        "the fault happened as scripted": fault.applied,
        "healthy nodes merge every round": not swarm_lost and not any(healthy_gaps.values()),
        "faulted nodes back in sync": in_sync,
        "final hashes equal": len(finals) == 1 and "" not in finals,
        "no corrupt file, no lost record": data_lost == 0,
        "every node ended its run": all(codes == [0] for codes in exits.values()),
    }
    if not checks["every node ended its run"]:
        details.append(f"last exit codes: {exits}")
    return Result(
        scenario.name,
        scenario.title,
        seed,
        all(checks.values()),
        len(swarm_lost),
        node_lost,
        resync,
        data_lost,
        checks,
        fault,
        details,
    )
