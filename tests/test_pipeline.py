"""The block pipeline: results in order, work in a background thread, errors where they belong, early stops."""

from __future__ import annotations

import threading

import pytest

from sar_codec.pipeline import ahead


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_results_come_in_order_and_match_the_serial_ones(depth):
    assert list(ahead(range(10), lambda x: x * x, depth)) == [(x, x * x) for x in range(10)]


def test_work_runs_in_one_background_thread_and_items_in_the_callers():
    caller = threading.get_ident()
    read_in, worked_in = [], []

    def items():
        for i in range(4):
            read_in.append(threading.get_ident())
            yield i

    def work(x):
        worked_in.append(threading.get_ident())
        return x

    assert [r for _, r in ahead(items(), work, 1)] == [0, 1, 2, 3]
    assert set(read_in) == {caller} and len(set(worked_in)) == 1 and caller not in worked_in


def test_an_error_is_raised_at_its_item():
    def work(x):
        if x == 2:
            raise ValueError("bad block")
        return x

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item, _ in ahead(range(5), work, 1):
            got.append(item)
    assert got == [0, 1]


def test_stopping_early_drops_the_items_not_started():
    started = []

    def work(x):
        started.append(x)
        return x

    gen = ahead(range(100), work, 1)
    assert next(gen) == (0, 0)
    gen.close()
    assert len(started) <= 3  # the yielded one, the one in flight and at most one queued behind it
