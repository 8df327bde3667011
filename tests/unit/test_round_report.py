"""node/round/report.py: the round report as the node writes it and the demo reads it."""

import pytest

from node.round.report import RoundReport, read_reports


def test_a_report_reads_back_as_written_and_leaves_out_what_the_round_did_not_have(tmp_path):
    trained = RoundReport(
        round=3, hotkey="h", t_start=1.0, train_loss=2.5, inner_steps=40, verdicts=[(2, "s", "pass")], dht_rejections={"unregistered": 2}
    )
    idle = RoundReport(round=4, hotkey="h", t_start=2.0)
    path = tmp_path / "rounds.jsonl"
    trained.append_to(path)
    idle.append_to(path)
    with open(path, "a") as f:
        f.write('{"round": 5, "hot')  # a line being written right now
    reports = read_reports(path)
    assert reports == {3: trained, 4: idle}
    assert '"train_loss"' not in idle.to_json() and '"manifest_signer": null' in idle.to_json()


@pytest.mark.parametrize("line", ["[]", '{"round": 1}', '{"round": 1, "hotkey": "h", "t_start": 0, "bogus": 1, "verdicts": 3}', "nan"])
def test_lines_that_are_not_reports_are_refused(line):
    with pytest.raises(ValueError):
        RoundReport.from_json(line)
