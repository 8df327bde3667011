"""fuzz_live's memory figures: the halves' medians hold the warm-up, the later half's trend does not."""

from devnet.fuzz_live import node_figures
from node.round.report import RoundReport

MIB = 1 << 20


def reports(rss_mib: list[float]) -> dict[int, RoundReport]:
    return {
        r: RoundReport(round=r, hotkey="h", t_start=0.0, rss_bytes=int(v * MIB), peak_rss_bytes=int(v * MIB)) for r, v in enumerate(rss_mib)
    }


def test_a_warm_up_then_a_plateau_has_growth_between_the_halves_but_no_trend(tmp_path):
    warm_up_then_flat = [1000 + 50 * r for r in range(20)] + [2000, 2020] * 10
    figures = node_figures("node0", True, reports(warm_up_then_flat), tmp_path / "none.log")
    assert figures.rss_growth_mib > 256 and abs(figures.rss_trend_mib_per_round) < 1.0, figures


def test_a_leak_shows_as_its_slope(tmp_path):
    figures = node_figures("node0", True, reports([1000 + 7.5 * r for r in range(40)]), tmp_path / "none.log")
    assert figures.rss_trend_mib_per_round == 7.5 and figures.rss_growth_mib == 150.0
