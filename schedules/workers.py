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

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

log = logging.getLogger(__name__)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int) -> list[R]:
    """[fn(job) for job in jobs], on up to `workers` processes. `fn` must be a module-level function and jobs
    and results picklable. An exception in a job is raised here."""
    if workers <= 1 or len(jobs) <= 1 or not _can_fork():
        return [fn(job) for job in jobs]
    try:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, jobs))
    except (OSError, BrokenProcessPool) as e:  # no process to be had (or one was killed): the jobs are pure
        log.warning("worker processes failed (%s); running %d jobs here", e, len(jobs))
        return [fn(job) for job in jobs]


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


class Helper:
    """One forked process that computes fn(job) for one job at a time while the caller goes on with its own:
    for a sequential search that guesses its next step (schedules.order_search's polish climb). `fn` and what
    it closes over are inherited by the fork, not pickled; jobs and results are. Helper.start gives one, or None
    where it cannot (then the caller computes everything itself); use it in a `with` block."""

    def __init__(self, fn: Callable[[J], R]) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(fn, child), daemon=True)
        self._proc.start()
        child.close()

    @classmethod
    def start(cls, fn: Callable[[J], R]) -> Helper | None:
        """A helper, or None where this process may not fork one (no fork, a daemonic process, no resources)."""
        if not _can_fork():
            return None
        try:
            return cls(fn)
        except OSError as e:
            log.warning("no helper process (%s); the search runs alone", e)
            return None

    def submit(self, job: J) -> None:
        self._conn.send(job)

    def result(self) -> R:
        """The answer to the last job submitted; an exception in the job is raised here."""
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):  # the child died: nothing left to stop
            pass
        self._conn.close()
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _serve(fn: Callable[[J], R], conn: Any) -> None:
    while (job := conn.recv()) is not None:
        try:
            conn.send((True, fn(job)))
        except Exception as e:  # sent back, raised in the caller: a failure that cannot be lost
            conn.send((False, e))


__all__ = ["Helper", "run_jobs"]
