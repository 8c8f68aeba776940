"""Independent jobs of a search run on several processes, their results in the jobs' order.

The order search's climbs (schedules.order_search) are pure Python, so threads would share one interpreter
lock; processes run them side by side. Each job is a function of its arguments only (its own random stream,
its own move budget), and results come back in the order the jobs were given, so the answer is the same with
any number of workers; only the wall time changes. The jobs' processes are forked: they start in tens of
milliseconds, where a fresh interpreter would import torch and the project again, and they run nothing but
this package's Python (no torch, no thread the fork left behind). Where fork is not available, or inside a
daemonic process that may not have children, the jobs run here, one after another.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int) -> list[R]:
    """[fn(job) for job in jobs], on up to `workers` processes. `fn` must be a module-level function and jobs
    and results picklable. An exception in a job is raised here."""
    if workers <= 1 or len(jobs) <= 1 or not _can_fork():
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, jobs))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


__all__ = ["run_jobs"]
