"""Measurement primitives that tuning, validation and benchmarks all use (DESIGN §8).

Time to target:
A baseline run with cap T sets the target: its proven optimum, or else its best objective at
T. Another configuration's time to target is when its incumbent first reaches that objective
and, for a proven target, when it proves optimality too. Unreached targets count PAR2 (2·T).
Speedups are baseline time / candidate time, aggregated with the geometric mean.

Times that enter a ratio, a logarithm or a geometric mean are floored at :data:`TIME_FLOOR_S`
first (:func:`floor_time`); tuning, validation and the benchmarks all use this one floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for annotations: importing the solver loads OR-Tools (seconds)
    from fresh_solver.model import Problem
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.solver import SolveResult

# 0.1 ms: well below any measured solve time (building even a tiny model takes about 1 ms),
# so for times the floor only keeps a zero (a time that was never reached and defaults to 0, a
# score such as a gap integral of 0) from making a ratio infinite or a logarithm undefined.
TIME_FLOOR_S = 1e-4


def floor_time(seconds: float) -> float:
    """``seconds``, but at least :data:`TIME_FLOOR_S`: safe to divide by and take the log of."""
    return max(seconds, TIME_FLOOR_S)


def paired_speedup(baseline_s: float, candidate_s: float) -> float:
    """How many times faster the candidate was than the baseline on one (instance, seed) pair:
    baseline time / candidate time, the candidate's time floored (:data:`TIME_FLOOR_S`)."""
    return baseline_s / floor_time(candidate_s)


@dataclass(frozen=True)
class Target:
    objective: int
    proven: bool
    cap_s: float

    @property
    def par2(self) -> float:
        return 2 * self.cap_s


def target_of(baseline: SolveResult, cap_s: float) -> Target | None:
    """The target a baseline run sets; None when it found no solution at all."""
    if baseline.objective is None:
        return None
    return Target(baseline.objective, baseline.optimal, cap_s)


class UnsoundClaim(Exception):
    """A run proved an optimum that a schedule found on the same instance beats.

    CP-SAT itself is wrong under some parameter combinations (DESIGN §9): this is evidence
    against the configuration of the run, not a bug of ours, so callers score the
    configuration as failed (tuning), refuse it (validation) or report it (the soundness
    sweep) and go on. ``where`` names the instance and seed once a caller knows them."""

    def __init__(self, claimed: int, feasible: int, where: str = ""):
        self.claimed, self.feasible, self.where = claimed, feasible, where
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"unsound: proved {self.claimed} where {self.feasible} is feasible"
        return f"{text} ({self.where})" if self.where else text

    def at(self, where: str) -> UnsoundClaim:
        return UnsoundClaim(self.claimed, self.feasible, where)


class Claim(Protocol):
    """A run's result as far as soundness goes: a solve's, or a scored run's."""

    objective: int | None

    @property
    def optimal(self) -> bool: ...


def refuted_claim(result: Claim, feasible: int | None) -> UnsoundClaim | None:
    """The unsound claim of ``result`` when it proved an optimum worse than ``feasible`` (the
    best objective any run found on the same instance), else None."""
    if result.optimal and feasible is not None and result.objective is not None \
            and result.objective > feasible:
        return UnsoundClaim(result.objective, feasible)
    return None


def time_to_target(result: SolveResult, target: Target) -> float:
    """Seconds until ``result`` met ``target``, or PAR2 when it did not within the cap.

    Raises :class:`UnsoundClaim` when ``result`` proved an optimum worse than the target (a
    schedule the target's run found). A proof *better* than a proven target refutes the
    target's run instead: the result reached it, and is timed as such."""
    if (claim := refuted_claim(result, target.objective)) is not None:
        raise claim
    if target.proven:
        if result.optimal:
            return min(result.wall_time_s, target.cap_s)
        return target.par2
    reached = result.time_to(target.objective)
    return target.par2 if reached is None or reached > target.cap_s else reached


def gap_integral(result: SolveResult, best_known: int, horizon: float) -> float:
    """Primal gap integral in seconds: gap(t) = (incumbent - best) / incumbent, 1 before any
    solution, 0 once the best known is reached or optimality proven, integrated over
    [0, ``horizon``]. Where the time limit proves nothing, time to target jumps from seconds to
    PAR2 when a run misses an unproven target by one unit; the gap integral ranks runs by how
    soon and how close they got, on one yardstick for every configuration."""
    total, last_t, gap = 0.0, 0.0, 1.0
    end = min(result.wall_time_s, horizon)
    for t, obj in result.improvements:
        t = min(t, end)
        total += gap * (t - last_t)
        last_t = t
        gap = 0.0 if obj <= best_known else (obj - best_known) / max(abs(obj), 1)
    if not result.optimal:  # the run used its whole limit with the last gap
        end = horizon
    return total + gap * max(0.0, end - last_t)


def best_objectives(runs: list[Runs]) -> dict[str, int]:
    """Per instance, the best objective any run with a valid schedule found: the yardstick of
    the gap integral, shared by every configuration compared (the candidate's own schedules
    count, so no side is measured against a bound only the other could reach)."""
    best: dict[str, int] = {}
    for by_pair in runs:
        for (instance, _), pair_runs in by_pair.items():
            for result in pair_runs:
                if result.objective is not None and result.valid is not False:
                    best[instance] = min(best.get(instance, result.objective), result.objective)
    return best


# A pair is repeated until it has taken this much solving (all its configurations together)...
PAIR_BUDGET_S = 1.0
# ... or this many rounds: 15 timings of a 30 ms solve make a median worth comparing.
MAX_REPEATS = 15
# A tuning trial's pair, less: a trial is one of many and the race re-measures the best, but a
# 30 ms solve timed once would still make a trial look best (or worst) by chance.
TRIAL_PAIR_BUDGET_S = 0.25
TRIAL_MAX_REPEATS = 5

Runs = dict[tuple[str, int], list["SolveResult"]]  # per (instance, seed): the runs, in order
# measure_pairs' key for the untimed target runs, and the seed offset they run on
TARGET = "target"
TARGET_SEED_OFFSET = 1_000_003


def measure_pairs(configs: dict[str | int, SolverConfig], instances: dict[str, Problem],
                  seeds: list[int], time_limit: float, *, pair_budget_s: float = PAIR_BUDGET_S,
                  max_repeats: int = MAX_REPEATS,
                  target: SolverConfig | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict[str | int, Runs]:
    """Every configuration on every (instance, seed) pair, on the template model; per
    configuration name, the runs of each pair in the order they ran.

    Comparing configurations by time is only fair when nothing but the configuration differs
    between their runs, so the runs are interleaved: one pair at a time, every configuration
    back to back, the one that goes first rotating from pair to pair and round to round (a
    drift in the machine's speed falls on every side alike, not on whichever runs second),
    after one untimed warm-up solve (the process's one-time costs are nobody's). A pair is run
    again, every configuration once per round, until it has taken ``pair_budget_s`` of
    solving or ``max_repeats`` rounds; ``max_repeats=1`` runs each pair once.

    ``target``: a configuration run once per pair before the timed rounds, untimed, on another
    solver seed (``seed + TARGET_SEED_OFFSET``); its runs (under :data:`TARGET`) give the
    pairs' targets. A target taken from one of the timed runs favours the side it came from:
    that run reaches its own final result by definition, and when the result is not proven
    another run of the same configuration may not reach it in time.

    ``progress(done, total)`` is called after each pair (long measurements show progress)."""
    from fresh_solver.solver import solve

    names = list(configs)
    runs: dict[str | int, Runs] = {name: {} for name in names}
    pairs = [(instance, seed) for instance in instances for seed in seeds]
    if pairs:  # the warm-up: one-time costs of the process, timed for nobody
        smallest = min(instances.values(), key=lambda problem: problem.num_tasks)
        solve(smallest, model="template", time_limit=min(1.0, time_limit), check=False)
    for k, (instance, seed) in enumerate(pairs):
        spent, round_ = 0.0, 0
        for name in names:
            runs[name][(instance, seed)] = []
        if target is not None:
            runs.setdefault(TARGET, {})[(instance, seed)] = [solve(
                instances[instance], model="template", options=target.model,
                params=target.cp_sat, time_limit=time_limit, seed=seed + TARGET_SEED_OFFSET)]
        while round_ == 0 or (spent < pair_budget_s and round_ < max_repeats):
            shift = (k + round_) % len(names)
            for name in names[shift:] + names[:shift]:
                config = configs[name]
                result = solve(instances[instance], model="template", options=config.model,
                               params=config.cp_sat, time_limit=time_limit, seed=seed)
                runs[name][(instance, seed)].append(result)
                spent += result.wall_time_s
            round_ += 1
        if progress is not None:
            progress(k + 1, len(pairs))
    return runs


def time_to_proof(result: SolveResult, cap_s: float) -> float:
    """Seconds until ``result`` proved optimality (build included), or PAR2 (2·cap) when its
    run, limited to ``cap_s``, did not: the score of a run whose target is the optimum."""
    return result.wall_time_s if result.optimal else 2 * cap_s


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank rule: always one of the measured values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def geometric_mean(values: list[float]) -> float:
    """The aggregate of ratios and run times: the mean of their logs, exponentiated."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def spread(values: list[float]) -> dict[str, float]:
    """Summary of a sample: geometric mean, median, min, max, count."""
    return {
        "geomean": geometric_mean(values),
        "median": median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def wilcoxon_p(baseline_times: list[float], candidate_times: list[float]) -> float:
    """One-sided p-value that the candidate is faster, on paired log-times (scipy's
    signed-rank test; 1.0 when every pair ties)."""
    from scipy.stats import wilcoxon

    diffs = [math.log(b) - math.log(c) for b, c in zip(baseline_times, candidate_times)]
    if not any(diffs):
        return 1.0
    return float(wilcoxon(diffs, alternative="greater").pvalue)


def mann_whitney_slower_p(baseline_times: list[float], current_times: list[float]) -> float:
    """One-sided p-value that the current times are slower (stochastically greater) than the
    baseline's, unpaired (scipy's Mann-Whitney U: exact for small samples without ties,
    normal approximation with tie correction otherwise). Unpaired, because a baseline and a
    later benchmark are separate samples of one distribution, not pairs of one run."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(current_times, baseline_times, alternative="greater").pvalue)


def median_ratio_ci(baseline_times: list[float], current_times: list[float], *,
                    confidence: float = 0.95, n_resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians (current / baseline, > 1 = slower) with a percentile bootstrap
    confidence interval: each side resampled with replacement ``n_resamples`` times, seeded so
    a report is reproducible. Medians, because one stalled run must not move the figure;
    the baseline median is floored (:data:`TIME_FLOOR_S`)."""
    import numpy as np

    base, cur = np.asarray(baseline_times, float), np.asarray(current_times, float)
    ratio = float(np.median(cur) / floor_time(float(np.median(base))))
    rng = np.random.default_rng(seed)
    base_medians = np.median(rng.choice(base, (n_resamples, base.size)), axis=1)
    cur_medians = np.median(rng.choice(cur, (n_resamples, cur.size)), axis=1)
    ratios = cur_medians / np.maximum(base_medians, TIME_FLOOR_S)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return ratio, float(low), float(high)


P_ADJUSTMENTS = ("holm", "bh")


def adjust_p_values(p_values: list[float], method: str = "holm") -> list[float]:
    """p-values adjusted for testing several instances at once, in the input's order.

    ``holm`` (Holm's step-down) bounds the chance of *any* false alarm across the instances
    (family-wise error), so an A/A comparison raises one no more often than alpha; ``bh``
    (Benjamini-Hochberg, scipy) bounds the expected share of false alarms among the flagged
    instances instead: more sensitive with many instances, but then some flags are noise.
    """
    if method not in P_ADJUSTMENTS:
        raise ValueError(f"unknown p-value adjustment {method!r}; expected {P_ADJUSTMENTS}")
    if not p_values:
        return []
    if method == "bh":
        from scipy.stats import false_discovery_control

        return [float(p) for p in false_discovery_control(p_values, method="bh")]
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
