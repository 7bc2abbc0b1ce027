"""How many trials may run at once on one machine: the size of the Airflow pool
``fresh_solver_trials`` that every trial task runs in.

Trials measure time, so two trials must not share cores: a trial may run as many CP-SAT
workers as the search space's ``num_workers`` bound allows (the shipped space: 8; a space that
does not search it runs the defaults' one worker per core). The pool holds
``max(1, cores // that bound)`` slots: one on this 2-core machine, two on a 16-core one.
"""

from __future__ import annotations

import os

TRIAL_POOL = "fresh_solver_trials"


def trial_workers(space_path: str | None = None) -> int:
    """The most CP-SAT workers one trial may run with the given (or the shipped) space."""
    from fresh_solver.params.space import load_space

    cores = len(os.sched_getaffinity(0))
    for dimension in load_space(space_path).dimensions:
        if dimension.key == "cp_sat.num_workers":
            return max(int(max(dimension.candidates())), 1)
    return cores


def trial_pool_slots(cores: int | None = None, space_path: str | None = None) -> int:
    """Concurrent trials that do not oversubscribe ``cores`` (default: this machine's)."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // trial_workers(space_path))
