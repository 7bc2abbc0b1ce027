"""The template model's own switches, each measurable on its own (see the core benchmark).

Defaults are what the benchmark showed to help; the parameters layer lets tuning choose them
together with CP-SAT's parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from fresh_solver.errors import InputError


@dataclass(frozen=True)
class ModelOptions:
    """Which template-level strengths the template model adds to the plain formulation.

    symmetry_breaking: order interchangeable jobs (same template, release, due, weight) by
        the start of one single-mode task (one on a unary machine if there is one, strictly);
        never across groups, so the optimum is unchanged.
    redundant_bounds: lower bounds on the objective that CP-SAT's relaxation misses. Makespan:
        per machine, head + load + tail bounds for every (head, tail) subset of its tasks, and
        a total-work bound, stated as linear constraints over the mode literals. Weighted
        tardiness: the machine-set bound of :mod:`fresh_solver.solver.tardiness_bound` (a
        constant).
    warm_start: (makespan) a greedy schedule given as a solution hint; its value also caps
        the horizon (an optimal schedule is never worse than a feasible one). Off by default:
        on the development families it slowed CP-SAT down more often than it helped.
    search_strategy: branch on job start times in group order (lowest start first). Off by
        default: at three seeds it reached the baseline's target sooner on the core
        benchmark's hard families but not on held-out ones, and proved orb01 later (README,
        "Measuring").
    tardiness_hint: (weighted tardiness) a dispatching schedule by Apparent Tardiness Cost
        (:mod:`fresh_solver.solver.tardiness_dispatch`) given as a solution hint. On by
        default: on generated 216-288-task mixes it turned the template model's 30 s
        incumbents from worse than the baseline's on half the pairs to better on all 8 (6 of
        8 on 103-144 tasks; README, "Measuring").
    """

    symmetry_breaking: bool = True
    redundant_bounds: bool = True
    warm_start: bool = False
    search_strategy: bool = False
    tardiness_hint: bool = True

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: ModelOptions | None = None) -> ModelOptions:
        """Switches named in ``data`` over ``base`` (the defaults when None)."""
        if not isinstance(data, dict):
            raise InputError(f"model options must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        bad = [f"{k}: unknown model option (known: {', '.join(sorted(known))})"
               for k in data if k not in known]
        bad += [f"{k}: must be true or false, got {v!r}"
                for k, v in data.items() if k in known and not isinstance(v, bool)]
        if bad:
            raise InputError(bad)
        return replace(base or cls(), **data)


PLAIN = ModelOptions(False, False, False, False, False)
OBJECTIVE_OF_SWITCH = {"warm_start": "makespan", "tardiness_hint": "weighted_tardiness"}


def switches_for(objective: str) -> list[str]:
    """The switches that change the template model of a problem with ``objective`` (the
    others are objective-specific and do nothing there)."""
    return [f.name for f in fields(ModelOptions)
            if OBJECTIVE_OF_SWITCH.get(f.name, objective) == objective]
