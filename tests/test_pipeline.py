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


def test_two_workers_overlap_and_results_stay_in_order():
    """With two workers, two items are worked on at once (each waits until the other has started) and the
    results still come in the items' order."""
    both = threading.Barrier(2, timeout=10)
    running, most = [0], [0]
    lock = threading.Lock()

    def work(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if x < 2:
            both.wait()  # raises BrokenBarrierError unless items 0 and 1 run at the same time
        with lock:
            running[0] -= 1
        return -x

    assert list(ahead(range(8), work, 1, workers=2)) == [(x, -x) for x in range(8)]
    assert most[0] == 2
    caller = threading.get_ident()  # depth 0 stays in the caller's thread, whatever the workers
    assert list(ahead(range(3), lambda _: threading.get_ident(), 0, workers=2)) == [(x, caller) for x in range(3)]


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
