"""Candidate vs baseline on held-out pairs: speed, significance, quality, validity.

Both configurations run every (instance, seed) pair to the time limit (no early stop, so the
objective at the limit is comparable). The baseline's result on a pair is the target (DESIGN
§8); the candidate's time to target comes from its improvement trace. The statistics:
geometric-mean speedup, a one-sided Wilcoxon signed-rank test on the paired log-times
(scipy.stats), and quality non-inferiority (the candidate's objective never worse than the
baseline's beyond a relative tolerance).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fresh_solver.measure import (
    Target,
    UnsoundClaim,
    floor_time,
    geometric_mean,
    paired_speedup,
    time_to_target,
    wilcoxon_p,
)
from fresh_solver.model import Problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.solver import SolveResult, solve


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
    baseline_time_s: float
    candidate_time_s: float
    proven_target: bool
    candidate_valid: bool | None

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


def run_pairs(config: SolverConfig, instances: dict[str, Problem], seeds: list[int],
              time_limit: float) -> dict[tuple[str, int], SolveResult]:
    return {(name, seed): solve(problem, model="template", options=config.model,
                                params=config.cp_sat, time_limit=time_limit, seed=seed)
            for name, problem in instances.items() for seed in seeds}


def compare(name: str, baseline: dict[tuple[str, int], SolveResult],
            candidate: dict[tuple[str, int], SolveResult], time_limit: float,
            tolerance: float) -> Comparison:
    comparison = Comparison(name)
    for key, base in baseline.items():
        cand = candidate[key]
        if base.objective is None:  # the baseline found nothing: any solution is a win
            base_time = 2 * time_limit
            cand_time = cand.time_to_first_s or 2 * time_limit
        else:
            target = Target(base.objective, base.optimal, time_limit)
            base_time = base.wall_time_s if base.optimal else (base.time_to_best_s or 0.0)
            try:
                cand_time = time_to_target(cand, target)
            except UnsoundClaim:  # the validator refuses the candidate for it
                cand_time = target.par2
            limit = base.objective * (1 + tolerance)
            if cand.objective is None or cand.objective > limit:
                comparison.quality_losses.append(
                    f"{key[0]} seed {key[1]}: objective {cand.objective} vs {name} "
                    f"{base.objective}")
        comparison.pairs.append(PairResult(key[0], key[1], base.objective, cand.objective,
                                           floor_time(base_time), floor_time(cand_time),
                                           base.optimal, cand.valid))
    comparison.speedup = geometric_mean([p.speedup for p in comparison.pairs])
    comparison.p_value = wilcoxon_p([p.baseline_time_s for p in comparison.pairs],
                                    [p.candidate_time_s for p in comparison.pairs])
    return comparison
