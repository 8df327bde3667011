import pytest

from protocol.assignment import assign_pages, derive, eval_pages
from protocol.schedule import Phases, RoundSchedule

RUN = b"\x05" * 32


def test_assignment_is_deterministic_and_distinct():
    excluded = frozenset(eval_pages(RUN, 1000, 10))
    a = assign_pages(RUN, 3, "hk1", 1000, 16, excluded)
    assert a == assign_pages(RUN, 3, "hk1", 1000, 16, excluded)
    assert len(set(a)) == 16 and not set(a) & excluded
    assert a != assign_pages(RUN, 4, "hk1", 1000, 16, excluded)
    assert a != assign_pages(RUN, 3, "hk2", 1000, 16, excluded)
    assert a != assign_pages(b"\x06" * 32, 3, "hk1", 1000, 16, excluded)


def test_assignment_pinned_values():
    """Frozen outputs: a second implementation (or a refactor) must reproduce exactly these."""
    assert derive(RUN, "x", 1).hex() == "97f611ac305d121d5e302369ef9b29f87d85678bdfee94c221999e89971da93e"
    assert assign_pages(RUN, 0, "hk", 100, 5, frozenset()) == [12, 73, 0, 21, 42]
    assert eval_pages(RUN, 100, 3) == [11, 39, 84]
    # derive() is length-prefixed: concatenation ambiguities do not collide
    assert derive("ab", "c") != derive("a", "bc")


def test_assignment_covers_whole_pool_when_asked():
    excluded = frozenset({0, 1})
    pages = assign_pages(RUN, 0, "hk", 10, 8, excluded)
    assert sorted(pages) == list(range(2, 10))
    with pytest.raises(ValueError):
        assign_pages(RUN, 0, "hk", 10, 9, excluded)


def test_eval_pages():
    pages = eval_pages(RUN, 500, 20)
    assert pages == eval_pages(RUN, 500, 20) and len(set(pages)) == 20 and pages == sorted(pages)
    assert max(pages) > 100  # spread over the corpus, not its head
    with pytest.raises(ValueError):
        eval_pages(RUN, 5, 5)


def test_schedule_rounds_and_deadlines():
    s = RoundSchedule(genesis=1000.0, round_seconds=20.0, overlap=False)
    assert s.round_at(999.0) == -1
    assert s.round_at(1000.0) == 0 and s.round_at(1019.99) == 0 and s.round_at(1020.0) == 1
    d = s.deadlines(2)
    assert d.start == 1040.0 and d.end == 1060.0 and d.train_end == 1050.0
    assert d.start < d.train_end < d.reveal < d.collect_end < d.manifest_end < d.end
    assert s.manifest_slot(2, 0, 2) == d.collect_end
    assert d.collect_end < s.manifest_slot(2, 1, 2) < d.manifest_end
    assert [s.trained_from(r) for r in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        RoundSchedule(genesis=0.0, round_seconds=0.0)
    with pytest.raises(ValueError):
        Phases(train=0.8, reveal=0.9, collect=0.7, manifest=0.95, end=1.0)
    with pytest.raises(ValueError):
        Phases(train=1.2, reveal=1.3, collect=1.4, manifest=1.5, end=2.0)  # training past its own round


def test_with_overlap_round_r_trains_from_the_state_before_and_exchanges_while_the_next_trains():
    s = RoundSchedule(genesis=1000.0, round_seconds=20.0)
    assert s.overlap and [s.trained_from(r) for r in range(4)] == [0, 0, 1, 2]
    d, after = s.deadlines(2), s.deadlines(3)
    assert d.train_end - d.start >= 0.95 * 20.0  # training fills the round
    assert after.start < d.reveal < d.collect_end < d.manifest_end < d.end == s.deadlines(4).start
    assert d.train_end <= after.start  # the next round's training never waits on this one's deadline


def test_a_node_that_knows_its_train_phase_starts_as_late_as_it_still_fits():
    from node.round.engine import MIN_TRAIN_SHARE, TRAIN_MARGIN, latest_start
    from protocol.schedule import RoundSchedule

    d = RoundSchedule(genesis=1000.0, round_seconds=20.0).deadlines(3)
    by_share = d.start + (1 - MIN_TRAIN_SHARE) * (d.train_end - d.start)
    assert latest_start(d) == by_share  # nothing measured yet
    assert latest_start(d, 2.0) == d.train_end - TRAIN_MARGIN * 2.0 > by_share  # a short phase may start late
    assert latest_start(d, 60.0) == by_share  # a phase that fills the window never starts later than before
