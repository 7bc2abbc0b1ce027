"""Validate a candidate parameter set on held-out instances before it may be registered.

Baselines: the CP-SAT defaults always, and the current Production set when there is one. The
pass rule (configurable): against the defaults, a geometric-mean speedup of at least
``min_speedup`` with a Wilcoxon p-value below ``max_p_value``; against Production, not slower
(``min_speedup_vs_production``); against both, no quality loss; every schedule valid. The
report, a per-instance speedup chart and the candidate go to `fresh-solver/validation/<id>`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import ortools

from fresh_solver.choices import VALIDATION_METRICS
from fresh_solver.errors import InputError
from fresh_solver.measure import (
    Runs,
    best_objectives,
    floor_time,
    geometric_mean,
    measure_pairs,
    refuted_claim,
)
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.unsound import refuse_known_unsound
from fresh_solver.tracking import names
from fresh_solver.validation.compare import (
    METRIC_NAMES,
    Comparison,
    PassRule,
    compare,
)


@dataclass
class ValidationReport:
    template_id: str
    candidate: SolverConfig
    instance_set: str
    instances: list[str]
    seeds: list[int]
    time_limit: float
    rule: PassRule
    comparisons: list[Comparison]
    invalid_schedules: list[str]
    passed: bool
    reasons: list[str]
    performance_baseline_s: float
    solve_seconds: float = 0.0  # wall time of every solve it ran (overhead accounting)
    metric: str = "time_to_target"
    validated_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                     time.gmtime()))
    ortools_version: str = ortools.__version__
    run_id: str | None = None

    @property
    def speedup_factor(self) -> float:
        """Speedup over the CP-SAT defaults (the first comparison)."""
        return self.comparisons[0].speedup

    def to_dict(self) -> dict[str, Any]:
        return {"template_id": self.template_id, "passed": self.passed,
                "reasons": self.reasons, "speedup_factor": self.speedup_factor,
                "performance_baseline_s": self.performance_baseline_s,
                "validated_at": self.validated_at, "ortools_version": self.ortools_version,
                "instance_set": self.instance_set, "instances": self.instances,
                "seeds": self.seeds, "time_limit_s": self.time_limit, "metric": self.metric,
                "rule": self.rule.to_dict(), "candidate": self.candidate.to_dict(),
                "candidate_hash": self.candidate.hash,
                "invalid_schedules": self.invalid_schedules,
                "comparisons": [c.to_dict() for c in self.comparisons], "run_id": self.run_id,
                "solve_seconds": self.solve_seconds,
                "summary": self.summary()}

    def summary(self) -> str:
        """The reviewer's one-paragraph view (the registry version's description)."""
        parts = [f"Validation {'PASSED' if self.passed else 'FAILED'} on {len(self.instances)} "
                 f"held-out instances x {len(self.seeds)} seeds ({self.time_limit:g} s limit, "
                 f"OR-Tools {self.ortools_version})."]
        for c in self.comparisons:
            timed = median(p.baseline_time_s for p in c.pairs)
            repeats = median(p.repeats for p in c.pairs)
            parts.append(f"vs {c.baseline}: {c.speedup:.2f}x geomean "
                         f"{METRIC_NAMES[self.metric]} (its median {timed:.3g} s, timed "
                         f"{repeats:g} times per pair), "
                         f"Wilcoxon p = {c.p_value:.3g}, quality losses: "
                         f"{len(c.quality_losses)}.")
        if self.reasons:
            parts.append("Failed because: " + "; ".join(self.reasons) + ".")
        return " ".join(parts)


def judge(comparisons: list[Comparison], invalid: list[str], rule: PassRule) -> list[str]:
    """The reasons the candidate fails; none means it passes."""
    reasons = []
    defaults = comparisons[0]
    if defaults.speedup < rule.min_speedup:
        reasons.append(f"speedup vs defaults {defaults.speedup:.2f}x < {rule.min_speedup}x")
    if defaults.p_value >= rule.max_p_value:
        reasons.append(f"Wilcoxon p vs defaults {defaults.p_value:.3g} >= {rule.max_p_value}")
    for c in comparisons[1:]:
        if c.speedup < rule.min_speedup_vs_production:
            reasons.append(f"speedup vs {c.baseline} {c.speedup:.2f}x < "
                           f"{rule.min_speedup_vs_production}x")
    for c in comparisons:
        if c.quality_losses:
            reasons.append(f"{len(c.quality_losses)} quality loss(es) vs {c.baseline}")
    if invalid:
        reasons.append(f"{len(invalid)} invalid schedule(s)")
    return reasons


def unsound_claims(candidate: Runs, runs: list[Runs]) -> list[str]:
    """The candidate's proofs that a schedule of any run on the same instance beats, each
    ``unsound: proved X where Y is feasible (instance, seed s)`` (once per pair): a candidate
    under which CP-SAT claims a wrong optimum is refused, whatever its speed."""
    feasible = best_objectives(runs)
    claims = {}
    for (name, seed), pair_runs in candidate.items():
        for result in pair_runs:
            if (claim := refuted_claim(result, feasible.get(name))) is not None:
                claims.setdefault((name, seed), str(claim.at(f"{name}, seed {seed}")))
    return list(claims.values())


def validate(template_id: str, candidate: SolverConfig, instance_paths: tuple[str, ...],
             seeds: list[int], time_limit: float, rule: PassRule | None = None,
             production: SolverConfig | None = None, track: bool = True,
             log=lambda message: None, tags: dict[str, str] | None = None,
             metric: str = "time_to_target") -> ValidationReport:
    """Run the candidate and its baselines on every held-out pair, judge by ``metric``
    (:data:`~fresh_solver.choices.VALIDATION_METRICS`), and (``track``) log the
    report to MLflow with ``tags`` on its run (e.g. the tuning session it checks)."""
    from fresh_solver.tuning.session import load_instances

    if metric not in VALIDATION_METRICS:
        raise InputError(f"--metric: validation judges by one of "
                         f"{', '.join(VALIDATION_METRICS)}, got {metric!r}")
    rule = rule or PassRule()
    refuse_known_unsound(candidate, where=f"candidate {candidate.hash}")
    instances, instance_hash = load_instances(instance_paths)
    configs = {"candidate": candidate, "defaults": SolverConfig()}
    if production is not None:
        configs["production"] = production
    log(f"candidate {candidate.hash} and {', '.join(list(configs)[1:])} on "
        f"{len(instances)} instances x {len(seeds)} seeds, interleaved")
    runs = measure_pairs(configs, instances, seeds, time_limit)
    solve_seconds = sum(r.wall_time_s for by_pair in runs.values()
                        for pair_runs in by_pair.values() for r in pair_runs)
    best = best_objectives(list(runs.values()))
    cand = runs.pop("candidate")
    comparisons = [compare(name, base, cand, time_limit, rule.quality_tolerance,
                           metric=metric, best=best)
                   for name, base in runs.items()]
    invalid = [f"{name} seed {seed}: {r.violations[:2]}"
               for (name, seed), pair_runs in cand.items() for r in pair_runs
               if r.valid is False]
    reasons = unsound_claims(cand, [cand, *runs.values()]) + judge(comparisons, invalid, rule)
    perf = comparisons[0]
    report = ValidationReport(
        template_id, candidate, instance_hash, sorted(instances), seeds, time_limit, rule,
        comparisons, invalid, not reasons, reasons,
        performance_baseline_s=geometric_mean(
            [p.candidate_time_s for p in perf.pairs] if metric == "time_to_target" else
            # what the monitor compares production solve times with: a time, not a gap
            [floor_time(median(r.wall_time_s for r in pair_runs))
             for pair_runs in cand.values()]),
        solve_seconds=solve_seconds, metric=metric)
    if track:
        report.run_id = _log_report(report, tags or {})
    return report


def _speedup_chart(report: ValidationReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(report.instances) * 0.9), 4))
    width = 0.8 / len(report.comparisons)
    for k, comparison in enumerate(report.comparisons):
        values = [geometric_mean([p.speedup for p in comparison.pairs if p.instance == name])
                  for name in report.instances]
        ax.bar([i + k * width for i in range(len(values))], values, width,
               label=f"vs {comparison.baseline}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(report.rule.min_speedup, color="red", linestyle="--", linewidth=0.8,
               label=f"pass line {report.rule.min_speedup}x")
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(report.instances))],
                  report.instances, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"speedup, {METRIC_NAMES[report.metric]} (log)")
    ax.set_title(f"{report.template_id}: {'passed' if report.passed else 'failed'}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _log_report(report: ValidationReport, tags: dict[str, str]) -> str:
    from mlflow.entities import Metric, Param

    from fresh_solver import tracking

    client = tracking.client()
    exp = tracking.experiment_id(client, tracking.validation_experiment(report.template_id))
    run = client.create_run(exp, tags={
        "mlflow.runName": f"validate-{report.candidate.hash}",
        "validation_status": "passed" if report.passed else "failed",
        "template_id": report.template_id, "ortools_version": report.ortools_version,
        names.CONFIG_HASH: report.candidate.hash, **tags})
    rid = run.info.run_id
    report.run_id = rid
    now = int(time.time() * 1000)
    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.registry.evidence import verdict_params

    # The machine that measured: timings (and so the verdict) hold for it; health checks
    # ask for re-validation where the serving machine differs.
    # The verdict and the candidate's hash as params, which nobody can edit afterwards:
    # serving trusts these, not the tags above (registry.evidence).
    params = {**verdict_params(report.template_id, "passed" if report.passed else "failed",
                               report.candidate.hash, rid),
              "instance_set": report.instance_set, "seeds": len(report.seeds),
              "time_limit_s": report.time_limit, "metric": report.metric,
              "machine_fingerprint": fingerprint_id(),
              **report.rule.to_dict()}
    metrics = {"speedup_factor": report.speedup_factor,
               "performance_baseline_s": report.performance_baseline_s}
    for c in report.comparisons:
        metrics[f"speedup_vs_{c.baseline}"] = c.speedup
        metrics[f"p_value_vs_{c.baseline}"] = c.p_value
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "validation_report.json").write_text(json.dumps(report.to_dict(), indent=1))
        (folder / "parameters.json").write_text(json.dumps(report.candidate.to_dict(),
                                                           indent=1))
        _speedup_chart(report, folder / "speedup_chart.png")
        for name in ("validation_report.json", "parameters.json", "speedup_chart.png"):
            client.log_artifact(rid, str(folder / name))
    client.set_terminated(rid, "FINISHED")
    return rid
