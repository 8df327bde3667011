"""devnet/judge.py: what summary.json says about a demo, from synthetic round reports."""

import json

import pytest

from devnet.judge import judge
from node.config import RunSpec
from node.round.report import RoundReport

HONEST, CHEATER, ROUNDS = ["h0", "h1", "h2"], "c0", 4


def write_logs(out, verdicts: dict[str, list], cheater_in_manifests: range = range(1), shares=(0.02, 0.05, None, 0.03)):
    """Three honest nodes and one cheater, every round in every log, the same final state.

    `verdicts`: hotkey -> the (round, subject, verdict) its round-1 report records.
    """
    configs = []
    for i, hotkey in enumerate([*HONEST, CHEATER]):
        path = out / "nodes" / f"node{i}" / "run.toml"
        path.parent.mkdir(parents=True)
        configs.append(path)
        for r in range(ROUNDS):
            honest = hotkey != CHEATER
            RoundReport(
                round=r,
                hotkey=hotkey,
                t_start=float(r),
                train_seconds=10.0 if honest else None,
                inner_steps=(35 if r == 1 else 40) if honest else None,
                manifest_entries=3,
                manifest_hotkeys=HONEST + ([CHEATER] if r in cheater_in_manifests else []),
                state_hash="s",
                verdicts=verdicts.get(hotkey, []) if r == 1 else [],
                verify_seconds=1.0,
                verify_share=shares[r] if honest else None,
            ).append_to(path.parent / "rounds.jsonl")
    return configs


def run_judge(tmp_path, configs, cheaters=(CHEATER,)):
    code = judge(RunSpec(), configs, 4, ROUNDS, tmp_path, 1.0, [0] * 4, late=False, cheaters=list(cheaters), honest=3, seed=7)
    return code, json.loads((tmp_path / "summary.json").read_text())


def test_a_caught_cheater_and_clean_honest_nodes_pass(tmp_path):
    verdicts = {"h0": [(0, CHEATER, "fail"), (0, "h1", "pass")], "h1": [(0, CHEATER, "fail")], CHEATER: [(0, "h0", "fail")]}
    code, summary = run_judge(tmp_path, write_logs(tmp_path, verdicts))
    assert code == 0
    assert summary["seed"] == 7 and summary["peers"] == 4 and summary["honest"] == 3
    assert summary["excluded_from_round"] == {CHEATER: 1}
    # the cheater's verdict about h0 is only in verdicts_all
    assert summary["verdicts"] == {CHEATER: {"pass": 0, "fail": 2}, "h1": {"pass": 1, "fail": 0}}
    assert summary["verdicts_all"]["h0"] == {"pass": 0, "fail": 1}
    assert summary["failing_verdicts_on_honest"] == 0
    assert summary["verify_share"] == {**dict.fromkeys(HONEST, 0.05), CHEATER: None}
    assert summary["verify_share_mean"]["h0"] == pytest.approx(0.1 / 3, abs=1e-4) and summary["verify_share_mean"][CHEATER] is None
    assert summary["verify_wall_share"] == {**dict.fromkeys(HONEST, 0.1), CHEATER: None}
    assert summary["min_inner_steps"] == {**dict.fromkeys(HONEST, 35), CHEATER: None}
    assert "verify_cost" not in summary


def test_an_honest_node_failed_by_an_honest_validator_fails_the_demo(tmp_path, capsys):
    verdicts = {"h0": [(0, CHEATER, "fail")], "h1": [(0, "h2", "fail"), (0, "h0", "fail")]}
    code, summary = run_judge(tmp_path, write_logs(tmp_path, verdicts))
    assert code == 1 and summary["failing_verdicts_on_honest"] == 2
    assert "failing verdicts on honest nodes" in capsys.readouterr().err


def test_a_cheater_in_every_manifest_fails_the_demo(tmp_path, capsys):
    code, summary = run_judge(tmp_path, write_logs(tmp_path, {}, cheater_in_manifests=range(ROUNDS)))
    assert code == 1 and summary["excluded_from_round"] == {CHEATER: None}
    assert "never excluded" in capsys.readouterr().err


def test_without_cheaters_neither_criterion_applies(tmp_path):
    configs = write_logs(tmp_path, {"h1": [(0, "h2", "fail")]}, cheater_in_manifests=range(ROUNDS))
    code, summary = run_judge(tmp_path, configs, cheaters=())
    assert code == 0 and summary["failing_verdicts_on_honest"] == 1 and summary["adversaries"] == []
