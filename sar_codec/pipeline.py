"""Overlap the stages of block coding: one block's transforms run while the caller reads or writes another."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Blocks worked on ahead of the caller. One is enough to overlap the stages (the transforms already use every
# core through torch's threads) and keeps memory bounded by two blocks.
DEPTH = 1
# Blocks an encode works on at once: one block's transforms run while another's rANS coding holds the GIL
# (33.5 MPix in process on 2 cores: 12.8-13.9 s against 14.8-15.2 s with one; decoding gained nothing).
ENCODE_WORKERS = 2
# Blocks a decode with the torch-free decoder works on at once, its BLAS products on one thread each (OpenBLAS's
# own threads spun between small products and starved the GIL-bound rANS decoding: 33.5 MPix in process on 2
# cores, 8.3-9.1 s against 10.3-11.7 s with one block at a time and two BLAS threads).
DECODE_WORKERS = 2


def ahead(items: Iterable[T], work: Callable[[T], R], depth: int | None = None,
          workers: int = 1) -> Iterator[tuple[T, R]]:
    """``(item, work(item))`` for each item, in order, with ``work`` running in ``workers`` background threads
    up to ``max(depth, workers)`` items ahead of the caller (``depth`` default :data:`DEPTH`; 0: in the caller's
    thread, one after the other, whatever ``workers``).

    ``items`` is consumed in the caller's thread (so it may read files that belong to that thread). torch, numpy,
    zlib and GDAL release Python's GIL while they compute, so the caller's reading or writing overlaps the work,
    and with two workers one block's transforms overlap another's entropy coding (which holds the GIL). An
    exception from ``work`` is raised where its result would have been yielded; if the caller stops early, the
    items not started yet are dropped.
    """
    depth = DEPTH if depth is None else depth
    if depth <= 0:
        for item in items:
            yield item, work(item)
        return
    depth = max(depth, workers)
    pending: collections.deque[tuple[T, Future[R]]] = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sar-codec-block") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(work, item)))
                if len(pending) > depth:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
