"""Scoring one configuration over a set of instances × seeds (lower is better).

Every candidate runs on the same (instance, seed) pairs, so scores are paired. The reference
configuration (CP-SAT defaults) runs first and fixes, per pair, the target of the time-to-target
metric (DESIGN §8) and the reference objective of the others. Per-run scores aggregate with the
geometric mean.

Metrics:
- ``time_to_optimum``: seconds to a proven optimum; PAR2 (2·T) when not proven.
- ``time_to_target``: seconds to the reference's result (its optimum, proven, or its best at T).
- ``objective_at_limit``: (objective + 1) / (reference objective + 1) at T (1.0 = as good;
  +1 keeps a zero reference, e.g. no tardiness, finite), at most 2.0, what finding nothing
  scores.
- ``gap_integral``: the primal gap integral over [0, T] against the best objective known for
  the pair (gap 1 before a first solution, 0 once proven optimal), in seconds.

Soundness: a run that proves an optimum worse than a schedule known on the same instance (the
reference's, or any other configuration's, ``feasible``) makes the configuration *unsound*:
CP-SAT is wrong under it (DESIGN §9). :func:`evaluate` raises :class:`UnsoundClaim` naming the
instance and seed, and :func:`fresh_solver.tuning.session.run_trial` scores the trial failed.
So does a schedule the checker refuses when the same pair solved with CP-SAT's default
parameters (same model switches) gives a valid one; only when that one is invalid too is it our
bug (``AssertionError``).

Repetition: a pair whose solves are short is run again until it has taken
``TRIAL_PAIR_BUDGET_S`` of solving (at most ``TRIAL_MAX_REPEATS`` runs) and scored by the
median of its runs, the reference's first run being the target of all of them: one timing of a
30 ms solve would make a trial look best or worst by chance. A pair of second-long solves runs
once.

Adaptive capping (time metrics): a run is cut at ``cap_factor`` × the incumbent's score on that
pair, since past it the candidate cannot beat the incumbent there; a cut run scores its cap
(a lower bound on its true time) and is flagged ``capped``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from statistics import median
from typing import Any

from fresh_solver.measure import (
    TRIAL_MAX_REPEATS,
    TRIAL_PAIR_BUDGET_S,
    Claim,
    Target,
    UnsoundClaim,
    floor_time,
    gap_integral,
    geometric_mean,
    refuted_claim,
    time_to_target,
)
from fresh_solver.model import Problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.solver import SolveResult, solve

TIME_METRICS = ("time_to_target", "time_to_optimum")


@dataclass(frozen=True)
class Reference:
    """What the reference run found on one (instance, seed) pair."""

    objective: int | None
    proven: bool

    @classmethod
    def of(cls, result: Claim) -> Reference:
        """What ``result`` (a solve's, or a scored run's) sets as its pair's reference."""
        return cls(result.objective, result.optimal)


@dataclass
class RunScore:
    instance: str
    seed: int
    score: float
    status: str
    objective: int | None
    wall_time_s: float
    capped: bool = False
    valid: bool | None = None

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"


@dataclass
class Evaluation:
    score: float
    runs: list[RunScore] = field(default_factory=list)
    failed: str | None = None  # the error, when the trial crashed or was invalid

    @property
    def unsound(self) -> bool:
        """Failed because its configuration made CP-SAT claim a wrong optimum."""
        return bool(self.failed) and self.failed.startswith("unsound:")

    @property
    def capped(self) -> int:
        return sum(r.capped for r in self.runs)

    @property
    def wall_time_s(self) -> float:
        """Seconds its solves took (model build included): the measured share of a trial."""
        return sum(r.wall_time_s for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "failed": self.failed, "capped": self.capped,
                "runs": [asdict(r) for r in self.runs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """What :meth:`to_dict` wrote (``capped`` is counted from the runs again)."""
        return cls(data["score"], [RunScore(**r) for r in data["runs"]], data["failed"])


def pair_score(scores: list[RunScore]) -> RunScore:
    """One pair's score from its repeated runs: the first run's result (the target of the
    others when it is the reference's), the median score, the solving time of all of them,
    capped when any run was."""
    return replace(scores[0], score=median(s.score for s in scores),
                   wall_time_s=sum(s.wall_time_s for s in scores),
                   capped=any(s.capped for s in scores))


def worst_score(metric: str, time_limit: float) -> float:
    """What a failed trial scores: the PAR2 penalty of the metric."""
    return 2.0 if metric == "objective_at_limit" else 2 * time_limit


def score_run(metric: str, result: SolveResult, reference: Reference, time_limit: float) -> float:
    if metric == "time_to_optimum":
        return result.wall_time_s if result.optimal else 2 * time_limit
    if reference.objective is None:  # the reference found nothing: any solution is a win
        return (result.time_to_first_s or 2 * time_limit) if metric != "objective_at_limit" \
            else (1.0 if result.objective is not None else 2.0)
    if metric == "time_to_target":
        return time_to_target(result, Target(reference.objective, reference.proven, time_limit))
    if metric == "objective_at_limit":
        if result.objective is None:
            return 2.0
        return min(2.0, (result.objective + 1) / (reference.objective + 1))
    best = min(reference.objective, result.objective if result.objective is not None
               else math.inf)
    return gap_integral(result, int(best), time_limit)


def evaluate(
    config: SolverConfig,
    instances: dict[str, Problem],
    seeds: list[int],
    *,
    metric: str,
    time_limit: float,
    references: dict[tuple[str, int], Reference] | None = None,
    incumbent: dict[tuple[str, int], float] | None = None,
    cap_factor: float | None = 2.0,
    feasible: dict[str, int] | None = None,
) -> Evaluation:
    """Run ``config`` on every (instance, seed) pair and score it.

    Without ``references`` this is the reference run itself (time to target then means time
    to its own final result). ``feasible``: per instance, the best objective other
    configurations found (a proof above it is unsound). Exceptions (:class:`UnsoundClaim`
    included) are the caller's to turn into a failed trial.
    """
    runs: list[RunScore] = []
    for name, problem in instances.items():
        for seed in seeds:
            reference = (references or {}).get((name, seed))
            limit = time_limit
            if metric in TIME_METRICS and incumbent and cap_factor and (name, seed) in incumbent:
                limit = min(time_limit, max(cap_factor * incumbent[(name, seed)], 0.1))
            stop_at = reference.objective if (metric == "time_to_target" and reference
                                              and not reference.proven) else None
            scored: list[RunScore] = []
            while not scored or (sum(r.wall_time_s for r in scored) < TRIAL_PAIR_BUDGET_S
                                 and len(scored) < TRIAL_MAX_REPEATS):
                result = solve(problem, model="template", options=config.model,
                               params=config.cp_sat, time_limit=limit, seed=seed,
                               stop_at=stop_at)
                scored.append(score_result(config, problem, name, seed, result, metric=metric,
                                           time_limit=time_limit, reference=reference,
                                           feasible=feasible, limit=limit))
                if reference is None:  # the reference's first run is its repeats' target
                    reference = Reference.of(result)
            runs.append(pair_score(scored))
    return Evaluation(geometric_mean([floor_time(r.score) for r in runs]), runs)


def score_result(config: SolverConfig, problem: Problem, name: str, seed: int,
                 result: SolveResult, *, metric: str, time_limit: float,
                 reference: Reference | None, feasible: dict[str, int] | None = None,
                 limit: float | None = None) -> RunScore:
    """Score one finished run of ``config`` on (``name``, ``seed``), checked first: an invalid
    schedule or an unsound claim raises (see the module docstring). ``reference`` None: this
    is the reference run, its own target; ``limit``: the run's cap when below the time limit."""
    where = f"{name}, seed {seed}"
    if result.valid is False:
        _blame_invalid(config, problem, result, time_limit, seed, where)
    if (claim := refuted_claim(result, (feasible or {}).get(name))) is not None:
        raise claim.at(where)
    if reference is None:  # the reference run: its own result is its target
        reference = Reference.of(result)
    try:
        score = score_run(metric, result, reference, time_limit)
    except UnsoundClaim as claim:
        raise claim.at(where) from None
    capped = limit is not None and limit < time_limit and score >= limit
    return RunScore(name, seed, limit if capped else score, result.status, result.objective,
                    result.wall_time_s, capped, result.valid)


class UnsoundSchedule(Exception):
    """CP-SAT returned a schedule the checker refuses under a configuration whose CP-SAT
    defaults (same model) give a valid one: evidence against the configuration."""


def _blame_invalid(config: SolverConfig, problem: Problem, result: SolveResult,
                   time_limit: float, seed: int, where: str) -> None:
    """Raise for an invalid schedule: :class:`UnsoundSchedule` when the same pair with CP-SAT's
    default parameters (same model switches) gives a valid schedule, so the parameters are to
    blame; AssertionError (our model or checker is wrong) when that one is invalid too."""
    detail = f"{where}: invalid schedule: {result.violations[:2]}"
    if config.cp_sat:
        again = solve(problem, model="template", options=config.model, time_limit=time_limit,
                      seed=seed)
        if again.valid is not False:
            raise UnsoundSchedule(f"unsound: CP-SAT returned an invalid schedule "
                                  f"({detail}); its default parameters did not")
    raise AssertionError(detail)


def feasible_objectives(evaluations: list[Evaluation]) -> dict[str, int]:
    """Per instance, the best objective any of ``evaluations`` found (every run's schedule
    passed the checker, or its trial failed before it was recorded)."""
    best: dict[str, int] = {}
    for evaluation in evaluations:
        for run in evaluation.runs:
            if run.objective is not None:
                best[run.instance] = min(run.objective, best.get(run.instance, run.objective))
    return best


def refuted_runs(evaluation: Evaluation, feasible: dict[str, int]) -> str | None:
    """Why ``evaluation`` is unsound in the light of ``feasible`` (objectives found later, by
    other configurations), or None: its first run that proved an optimum above them."""
    for run in evaluation.runs:
        if (claim := refuted_claim(run, feasible.get(run.instance))) is not None:
            return str(claim.at(f"{run.instance}, seed {run.seed}"))
    return None


def references_from(evaluation: Evaluation) -> dict[tuple[str, int], Reference]:
    return {(r.instance, r.seed): Reference.of(r) for r in evaluation.runs}


def per_pair(evaluation: Evaluation) -> dict[tuple[str, int], float]:
    return {(r.instance, r.seed): r.score for r in evaluation.runs}
