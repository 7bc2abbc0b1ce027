"""Candidate vs baseline on held-out pairs: speed, significance, quality, validity.

Every configuration runs every (instance, seed) pair to the time limit (no early stop, so the
objective at the limit is comparable). Each run is scored by one of two metrics
(:data:`VALIDATION_METRICS`), both from its improvement trace:

- ``time_to_target`` (the default): seconds to the target, the first result of the pair's
  target run (DESIGN §8); PAR2 when not reached. Right where the time limit proves the
  instances: every target is then an optimum.
- ``gap_integral``: the primal gap integral over the time limit against the best objective any
  run of the comparison found on the instance. Right where it proves nothing: time to an
  unproven target jumps from seconds to PAR2 when a run misses it by one unit, which takes
  about three times the pairs to resolve the same change (``heldout_noise``).

The statistics: geometric-mean speedup (baseline score / candidate score), a one-sided Wilcoxon
signed-rank test on the paired log-scores (scipy.stats), and quality non-inferiority. Quality,
time to target: the candidate's objective never worse than the baseline's beyond a relative
tolerance, pair by pair (every target is an optimum the candidate must also reach). Gap
integral: the candidate's final objectives, over all pairs, no worse than the baseline's beyond
the tolerance (geometric mean of their ratios): on instances nobody proves, two runs of the same
set end a unit apart on about half the pairs, which would fail any candidate pair by pair.

How the pairs are measured (:func:`fresh_solver.measure.measure_pairs`) is what keeps an A/A
comparison — a set against itself — centred on 1.0:

- **Interleaved, order rotated.** The configurations run one pair at a time, back to back, the
  one that goes first rotating from pair to pair and round to round, so a drift in the
  machine's speed (other work starting, a CPU leaving its boost clock) falls on every side
  alike instead of on whichever ran second.
- **A warm-up solve** before the first timed one, so the process's one-time costs (lazy
  imports, OR-Tools' first solver) are nobody's.
- **Repetition where one timing decides nothing.** A pair is run again, every configuration
  once per round, until it has taken ``PAIR_BUDGET_S`` (1 s) of solving or ``MAX_REPEATS``
  (15) rounds; each side's time is its median over the rounds. A pair of three-second solves
  runs once; a pair of 30 ms solves some fifteen times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any

from fresh_solver.measure import (
    Runs,
    Target,
    UnsoundClaim,
    floor_time,
    gap_integral,
    geometric_mean,
    paired_speedup,
    time_to_target,
    wilcoxon_p,
)
from fresh_solver.solver import SolveResult

METRIC_NAMES = {"time_to_target": "time to target", "gap_integral": "primal gap integral"}


@dataclass(frozen=True)
class PassRule:
    """What a candidate must show on the held-out pairs to pass validation: a geometric-mean
    speedup over the CP-SAT defaults of ``min_speedup`` that a one-sided Wilcoxon test finds
    significant at ``max_p_value``, no clear loss against the Production set, and objectives
    no worse than ``quality_tolerance`` allows."""

    min_speedup: float = 1.2  # vs the CP-SAT defaults, geometric mean
    max_p_value: float = 0.05  # one-sided Wilcoxon vs the defaults (needs >= 5 pairs)
    # vs Production: not clearly slower. Not 1.0: re-validating the Production set itself
    # would then fail on noise about half the time.
    min_speedup_vs_production: float = 0.9
    quality_tolerance: float = 0.0  # relative: 0.01 allows objectives 1 % worse

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class PairResult:
    instance: str
    seed: int
    baseline_objective: int | None
    candidate_objective: int | None
    # Each side's score in seconds (time to target or gap integral), median over the repeats.
    baseline_time_s: float
    candidate_time_s: float
    proven_target: bool
    candidate_valid: bool | None
    repeats: int = 1

    @property
    def speedup(self) -> float:
        return paired_speedup(self.baseline_time_s, self.candidate_time_s)


@dataclass
class Comparison:
    baseline: str
    pairs: list[PairResult] = field(default_factory=list)
    speedup: float = 1.0
    p_value: float = 1.0
    quality_losses: list[str] = field(default_factory=list)
    metric: str = "time_to_target"

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "metric": self.metric,
                "speedup": self.speedup, "p_value": self.p_value,
                "quality_losses": self.quality_losses,
                "pairs": [asdict(p) | {"speedup": p.speedup} for p in self.pairs]}


def timed(result: SolveResult, target: Target | None, time_limit: float) -> float:
    """One run's time to ``target`` (None: the baseline found nothing, so the first solution
    is what counts); PAR2 for a claim some schedule beats (the validator refuses it)."""
    if target is None:
        return result.time_to_first_s or 2 * time_limit
    try:
        return time_to_target(result, target)
    except UnsoundClaim:
        return target.par2


def compare(name: str, baseline: Runs, candidate: Runs, time_limit: float,
            tolerance: float, targets: Runs | None = None, *, metric: str = "time_to_target",
            best: dict[str, int] | None = None) -> Comparison:
    """The candidate against one baseline, each side's score on a pair the median over its
    runs. Time to target: the target of a pair is the first of its ``targets`` runs (untimed
    runs, :data:`fresh_solver.measure.TARGET`) or else the baseline's first run. Gap
    integral: against ``best``, per instance the best objective of every run compared
    (:func:`fresh_solver.measure.best_objectives`). Quality: the candidate's first run against
    the baseline's (see the module docstring)."""
    comparison = Comparison(name, metric=metric)
    ratios = []
    for key, base_runs in baseline.items():
        base, cand_runs = base_runs[0], candidate[key]
        cand = cand_runs[0]
        setter = targets[key][0] if targets is not None else base
        target = None if setter.objective is None else Target(setter.objective,
                                                              setter.optimal, time_limit)
        known = (best or {}).get(key[0])

        def score(result: SolveResult, target=target, known=known) -> float:
            if metric == "gap_integral":
                return time_limit if known is None else gap_integral(result, known, time_limit)
            return timed(result, target, time_limit)

        if metric == "time_to_target" and target is None and targets is None:
            base_time = 2 * time_limit  # the baseline found nothing: any solution wins
        else:
            base_time = median(score(r) for r in base_runs)
        if base.objective is not None:
            pair_loss = metric == "time_to_target" and cand.objective is not None \
                and cand.objective > base.objective * (1 + tolerance)
            if cand.objective is None or pair_loss:
                comparison.quality_losses.append(
                    f"{key[0]} seed {key[1]}: objective {cand.objective} vs {name} "
                    f"{base.objective}")
            else:
                ratios.append((cand.objective + 1) / (base.objective + 1))
        cand_time = median(score(r) for r in cand_runs)
        comparison.pairs.append(PairResult(
            key[0], key[1], base.objective, cand.objective, floor_time(base_time),
            floor_time(cand_time), setter.optimal, cand.valid, repeats=len(cand_runs)))
    if metric == "gap_integral" and ratios and geometric_mean(ratios) > 1 + tolerance:
        comparison.quality_losses.append(
            f"final objectives {geometric_mean(ratios) - 1:.2%} worse than {name}'s "
            f"(geometric mean over {len(ratios)} pairs)")
    comparison.speedup = geometric_mean([p.speedup for p in comparison.pairs])
    comparison.p_value = wilcoxon_p([p.baseline_time_s for p in comparison.pairs],
                                    [p.candidate_time_s for p in comparison.pairs])
    return comparison
