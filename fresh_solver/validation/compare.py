"""Candidate vs baseline on held-out pairs: speed, significance, quality, validity.

Every configuration runs every (instance, seed) pair to the time limit (no early stop, so the
objective at the limit is comparable). The baseline's first result on a pair is the target
(DESIGN §8); each run's time to target comes from its improvement trace. The statistics:
geometric-mean speedup, a one-sided Wilcoxon signed-rank test on the paired log-times
(scipy.stats), and quality non-inferiority (the candidate's objective never worse than the
baseline's beyond a relative tolerance).

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
    geometric_mean,
    paired_speedup,
    time_to_target,
    wilcoxon_p,
)
from fresh_solver.solver import SolveResult


@dataclass(frozen=True)
class PassRule:
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
    baseline_time_s: float  # medians over the repetitions
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

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "speedup": self.speedup, "p_value": self.p_value,
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
            tolerance: float, targets: Runs | None = None) -> Comparison:
    """The candidate against one baseline. The target of a pair is the first of its
    ``targets`` runs (untimed runs, :data:`fresh_solver.measure.TARGET`) or else the
    baseline's first run; every run of either side is timed to it, and each side's time is
    its median. Quality: the candidate's first run against the baseline's."""
    comparison = Comparison(name)
    for key, base_runs in baseline.items():
        base, cand_runs = base_runs[0], candidate[key]
        cand = cand_runs[0]
        setter = targets[key][0] if targets is not None else base
        target = None if setter.objective is None else Target(setter.objective,
                                                              setter.optimal, time_limit)
        if target is None and targets is None:  # the baseline found nothing: any solution wins
            base_time = 2 * time_limit
        else:
            base_time = median(timed(r, target, time_limit) for r in base_runs)
        if base.objective is not None:
            limit = base.objective * (1 + tolerance)
            if cand.objective is None or cand.objective > limit:
                comparison.quality_losses.append(
                    f"{key[0]} seed {key[1]}: objective {cand.objective} vs {name} "
                    f"{base.objective}")
        cand_time = median(timed(r, target, time_limit) for r in cand_runs)
        comparison.pairs.append(PairResult(
            key[0], key[1], base.objective, cand.objective, floor_time(base_time),
            floor_time(cand_time), setter.optimal, cand.valid, repeats=len(cand_runs)))
    comparison.speedup = geometric_mean([p.speedup for p in comparison.pairs])
    comparison.p_value = wilcoxon_p([p.baseline_time_s for p in comparison.pairs],
                                    [p.candidate_time_s for p in comparison.pairs])
    return comparison
