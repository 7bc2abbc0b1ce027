"""How many trials may run at once on one machine: the size of the Airflow pool
``fresh_solver_trials`` that every trial task runs in, and the Celery queue that bounds it per
machine in distributed mode.

Trials measure time, so two trials must not share cores: a trial may run as many CP-SAT
workers as the search space's ``num_workers`` bound allows (the shipped space: 8; a space that
does not search it runs the defaults' one worker per core). The pool holds
``max(1, cores // that bound)`` slots: one on this 2-core machine, two on a 16-core one.

Distributed (CeleryExecutor, docs/distributed.md): an Airflow pool is global, so it cannot say
how many trials one machine runs. Every task that measures time (the reference in ``start``,
the trials, ``race``, ``validate``) therefore goes to the Celery queue :data:`TRIAL_QUEUE`, and
each machine runs one Celery worker that consumes only that queue with
``--concurrency`` = :func:`trial_pool_slots` of *its own* cores (``python -m
fresh_solver.lifecycle.pool`` prints it); the other tasks go to Airflow's ``default`` queue and
its own worker. Celery's concurrency is per worker process, not per queue (and
``worker_autoscale`` only resizes it), so a single worker consuming both queues would bound
trials and bookkeeping together: a dedicated worker per queue is the simplest bound that holds
on every machine. The pool is then sized to the sum of the trial workers' slots: it no longer
protects cores (the workers do) but keeps surplus trials waiting in Airflow, where they are
visible, instead of in the broker. LocalExecutor ignores queues: the embedded stack still
relies on the pool alone.
"""

from __future__ import annotations

from fresh_solver.cores import usable_cores

TRIAL_POOL = "fresh_solver_trials"
TRIAL_QUEUE = "fresh_solver_trials"


def trial_workers(space_path: str | None = None) -> int:
    """The most CP-SAT workers one trial may run with the given (or the shipped) space."""
    from fresh_solver.params.space import load_space

    cores = usable_cores()
    for dimension in load_space(space_path).dimensions:
        if dimension.key == "cp_sat.num_workers":
            return max(int(max(dimension.candidates())), 1)
    return cores


def trial_pool_slots(cores: int | None = None, space_path: str | None = None) -> int:
    """Concurrent trials that do not oversubscribe ``cores`` (default: this machine's, i.e. the
    CPUs this process may run on)."""
    cores = cores or usable_cores()
    return max(1, cores // trial_workers(space_path))


if __name__ == "__main__":  # a trial worker's --concurrency on this machine
    print(trial_pool_slots())
