"""An ordered, bounded process-pool map for the data stages (collect, cutout, resize).

:meth:`OrderedPool.map` yields ``fn(item)`` for every item of an iterable in the items' order, running the
calls in ``workers`` processes.  At most ``workers * window`` items are in flight at once, so a stage
streams a 100,000-image dataset with memory bounded by the window, not by the dataset (the input
iterator is pulled only as results are taken; ``multiprocessing.Pool.imap`` would read it all ahead).

Why processes: decoding, checking, cutting out and PNG-encoding an image is CPU work that holds the GIL
(Pillow's and OpenCV's C code releases it only in places).  The workers are forked once, before any
thread of the stage starts, so they inherit the imported modules and settings at no cost.  With
``workers`` 1 (or one item) everything runs in the calling process, exactly as a plain loop: the
outputs of a stage are byte-identical for every worker count (each call depends on its item only, and
the results come back in order), which ``tests/test_data_parallel.py`` checks file by file.

An exception in a call is raised in the caller when its result is taken; the pool is terminated on
leaving (also on Ctrl-C or an error), so no worker outlives its stage.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a scheduler or ``taskset`` sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int, n_items: int | None = None, per_worker: int = 8) -> int:
    """The process count for a ``workers`` setting: 0 means every available CPU.  With ``n_items``
    known, at most one worker per ``per_worker`` items (forking costs more than a few small images)."""
    n = workers or available_cpus()
    if n_items is not None:
        n = min(n, max(1, n_items // per_worker))
    return max(1, n)


class OrderedPool:
    """``workers`` processes forked on entering (before the caller starts a progress bar or fetch
    threads), terminated on leaving, however the ``with`` block ends; :meth:`map` is the ordered map."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    def __enter__(self) -> "OrderedPool":
        if self.workers > 1:
            self._pool = multiprocessing.get_context("fork").Pool(self.workers)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def map(self, fn: Callable[[T], R], items: Iterable[T], window: int = 4) -> Iterator[R]:
        """``fn(item)`` for each item, in order; in this process when the pool has one worker.

        ``fn`` must be picklable (a module-level function, or a :func:`functools.partial` of one with
        picklable arguments), and so must each item and result.
        """
        if self._pool is None:
            for item in items:
                yield fn(item)
            return
        pending: deque = deque()
        for item in items:
            pending.append(self._pool.apply_async(fn, (item,)))
            if len(pending) >= self.workers * window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
