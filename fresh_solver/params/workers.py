"""How many CP-SAT workers a solve runs when its parameters leave ``num_workers`` open.

CP-SAT's own default is one worker per usable core. With two cores that is one full-problem
search beside interleaved LNS; eight workers (time-sliced on the same cores) add the
lower-bound and restart searches (max_lp, core, fixed, quick_restart, reduced costs). What
pays depends on the problem's shape, measured on this project's suites (README, "Measuring"):

* makespan, where the template model's bounds make proofs reachable: eight workers proved
  all 20 shared instances within 60 s on two cores (19 with two workers, in 3.3x the time)
  and proved generated families with machine alternatives much sooner;
* weighted tardiness, where the gap stays wide and the incumbent is what the user gets:
  eight time-sliced workers lost every paired run to one worker per core.

So the template model runs ``max(8, cores)`` workers on makespan and one per core otherwise.
The baseline keeps CP-SAT's default: it is the plain reference the template model is judged
against. An explicit ``num_workers`` (a tuned or hand-written parameter set) always wins.
"""

from __future__ import annotations

from typing import Any

from fresh_solver.cores import usable_cores

PROOF_PORTFOLIO_WORKERS = 8


def default_workers(model: str, objective: str) -> int:
    """The worker count for ``model`` on a problem with ``objective`` when none is given."""
    cores = usable_cores()
    if model == "template" and objective == "makespan":
        return max(PROOF_PORTFOLIO_WORKERS, cores)
    return cores


def effective_workers(params: dict[str, Any], model: str, objective: str) -> int:
    """The workers a solve of ``model`` with ``params`` runs: the parameter, else (unset or 0,
    CP-SAT's "you choose") the shape's default."""
    return (params.get("num_workers") or params.get("num_search_workers")
            or default_workers(model, objective))
