"""Process targets for tests/test_monitor.py: a module of its own, so that a spawned child
imports this (and what the target needs) rather than the whole test module."""

from __future__ import annotations

import sys
import threading


def write_records(url: str, template_id: str, proc: int, n: int, threads: int) -> bool:
    """``threads`` threads record ``n`` solves (objective = proc*1000 + i), flushing now and
    then; True when everything reached the store."""
    from fresh_solver.operations.monitor import PerformanceMonitor, SolveRecord

    monitor = PerformanceMonitor(db_url=url)

    def write(first: int) -> None:
        for i in range(first, n, threads):
            monitor.record(SolveRecord(template_id, "OPTIMAL", 0.01, objective=proc * 1000 + i))
            if i % 10 == 0:
                monitor.flush(timeout=60)

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return monitor.flush(timeout=60)


def writer_process(url: str, template_id: str, proc: int, n: int, threads: int,
                   start) -> None:
    """A spawned writer: imports, waits at the ``start`` barrier (so that every writer opens
    the store at once), writes; exit code 3 if a record did not reach the store."""
    from fresh_solver.operations import monitor  # noqa: F401 - imported before the start

    start.wait(120)
    sys.exit(0 if write_records(url, template_id, proc, n, threads) else 3)
