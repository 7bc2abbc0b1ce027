"""RegressionDetector: is a configuration slower than its baseline, decided statistically.

    detector = RegressionDetector()
    detector.establish_baseline("part", from_run=BENCHMARK_RUN_ID, configuration="template")
    result = detector.check_regression("part", current_run=LATER_RUN_ID)
    if result:  # result.is_significant
        print(f"Regression detected: {result.performance_change:.1%} ({result.severity})")

**Baselines are distributions.** A baseline holds every repetition's time per instance (from a
benchmark run's ``runs.csv``), with the configuration hash, the OR-Tools version and the machine
fingerprint they were measured with. Each is one MLflow run in ``fresh-solver/benchmarks``
(tags ``fresh_solver.kind=baseline``, ``fresh_solver.template_id``,
``fresh_solver.configuration``, ``fresh_solver.evidence``; the deciding fields also as params,
which MLflow never lets anyone edit; artifact ``baseline.json``). The seed's single-number form,
``establish_baseline(template_id, baseline_time=5.2)``, is accepted and recorded as such, with
``evidence="single_number"``: weak evidence, since one number says nothing about the spread.

**The decision** is :mod:`fresh_solver.performance.regression_stats`'s, the same
the daily benchmark DAG makes.

The result's ``performance_change`` is the relative change of the median (0.5 = 50 % slower):
over several instances the geometric mean of the per-instance ratios, less one; ``baseline_time``
and ``current_time`` are the geometric means of the per-instance medians.

Comparing times from different machine fingerprints or OR-Tools versions is refused
(:class:`InputError`) unless ``allow_mixed=True``, and then the result is flagged (``mixed``,
``warnings``). A baseline of another template is refused.

The test controls false alarms between times measured under the same conditions. A baseline
measured at another time on a shared machine also carries the machine's drift (other load
makes every solve slower), which the test cannot tell from a regression: keep baselines fresh,
or re-measure the baseline configuration in the same benchmark run.
``python -m benchmarks.detector_power`` measures both (interleaved and later-block
A/A comparisons) together with the power to catch a 1.5x slow-down.

The times compared are one column of ``runs.csv`` (default ``time_to_target_s``, the project's
speed measure; PAR2 when the target was not reached). A missing value (``time_to_optimum_s`` of
a run that did not prove optimality) counts PAR2: twice the run's ``time_limit_s`` param.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.measure import P_ADJUSTMENTS, floor_time, geometric_mean
from fresh_solver.performance.mlflow_run import EXPERIMENT, metric_key
from fresh_solver.performance.regression_stats import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    InstanceComparison,
    change_points,
    compare_instances,
    overall,
)
from fresh_solver.tracking import names

BASELINE_ARTIFACT = "baseline.json"
BASELINE_FORMAT = "fresh-solver/baseline-v1"
METRICS = ("time_to_target_s", "wall_time_s", "time_to_first_s", "time_to_optimum_s")
ALL_INSTANCES = "*"  # the instance name a single number or a plain list of times stands for
REQUIRED_COLUMNS = ("configuration", "instance", "ortools_version", "fingerprint")


@dataclass(frozen=True)
class Distribution:
    """Times per instance with the context they were measured in: a stored baseline, or the
    current side of a comparison. ``evidence`` is ``distribution`` or ``single_number``."""

    template_id: str
    configuration: str
    metric: str
    times: dict[str, list[float]]
    evidence: str = "distribution"
    config_hash: str | None = None
    ortools_versions: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    source_run: str | None = None  # the benchmark run the times come from
    run_id: str | None = None  # a stored baseline's own MLflow run

    def to_dict(self) -> dict[str, Any]:
        return {"format": BASELINE_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distribution:
        values = {k: v for k, v in data.items() if k != "format"}
        values["ortools_versions"] = tuple(values.get("ortools_versions", ()))
        values["fingerprints"] = tuple(values.get("fingerprints", ()))
        return cls(**values)


@dataclass
class RegressionResult:
    """The seed's regression result (``performance_change``, ``baseline_time``,
    ``is_significant``) with the evidence behind it. True in a boolean context when a
    regression was found, as the seed's ``if regression:`` expects."""

    template_id: str
    configuration: str
    metric: str
    evidence: str
    is_significant: bool
    performance_change: float
    effect: float
    baseline_time: float
    current_time: float
    p_value: float | None
    severity: str
    rows: list[InstanceComparison]
    threshold: float
    alpha: float
    correction: str
    mixed: bool = False
    warnings: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    baseline_run_id: str | None = None
    current_run_id: str | None = None

    def __bool__(self) -> bool:
        return self.is_significant

    @property
    def weak_evidence(self) -> bool:
        return self.evidence != "distribution"

    def to_dict(self) -> dict[str, Any]:
        """The ``benchmark regress --json`` object: ``regression`` first, then the rest."""
        data = asdict(self)
        return {"regression": self.is_significant, "weak_evidence": self.weak_evidence, **data}


class RegressionDetector:
    """Baselines in MLflow, per-instance statistical verdicts, change points over history."""

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                 correction: str = "holm", metric: str = "time_to_target_s",
                 n_resamples: int = 2000):
        problems = []
        if not threshold >= 1.0:
            problems.append(f"threshold must be a ratio >= 1 (1.2 = 20 % slower), got "
                            f"{threshold}")
        if not 0 < alpha < 1:
            problems.append(f"alpha must be in (0, 1), got {alpha}")
        if correction not in P_ADJUSTMENTS:
            problems.append(f"correction must be one of {', '.join(P_ADJUSTMENTS)}, got "
                            f"{correction!r}")
        if metric not in METRICS:
            problems.append(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if problems:
            raise InputError(problems)
        self.threshold, self.alpha, self.correction = threshold, alpha, correction
        self.metric, self.n_resamples = metric, n_resamples
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from fresh_solver import tracking

            self._client = tracking.client()
        return self._client

    # -- baselines ---------------------------------------------------------------------------

    def establish_baseline(self, template_id: str, baseline_time: float | None = None, *,
                           from_run: str | None = None, configuration: str | None = None,
                           times: dict[str, list[float]] | None = None) -> Distribution:
        """Record a baseline for ``template_id`` (and ``configuration``) as an MLflow run.

        One of: ``from_run`` (a benchmark run: every repetition of ``configuration`` per
        instance, the strong form), ``times`` (times per instance measured on this machine),
        or ``baseline_time`` (the seed's single number, recorded as weak evidence).
        """
        import ortools

        from fresh_solver.fingerprint import fingerprint_id

        if sum(x is not None for x in (baseline_time, from_run, times)) != 1:
            raise InputError("give exactly one of baseline_time, from_run or times")
        if from_run is not None:
            base = self.load_run(from_run, configuration)
            if base.template_id != template_id:
                raise InputError(f"benchmark run {from_run} is of template "
                                 f"{base.template_id!r}, not {template_id!r}")
        else:
            single = baseline_time is not None
            if single and not (isinstance(baseline_time, int | float) and baseline_time > 0):
                raise InputError(f"baseline_time must be positive seconds, got "
                                 f"{baseline_time!r}")
            data = {ALL_INSTANCES: [float(baseline_time)]} if single else _checked_times(times)
            base = Distribution(
                template_id, configuration or ALL_INSTANCES, self.metric, data,
                evidence="single_number" if single else "distribution",
                ortools_versions=(ortools.__version__,), fingerprints=(fingerprint_id(),))
        return self._store(base)

    def _store(self, base: Distribution) -> Distribution:
        from mlflow.entities import Metric, Param

        from fresh_solver import tracking

        client = self.client
        medians = [median(t) for t in base.times.values()]
        run = client.create_run(tracking.experiment_id(client, EXPERIMENT), tags={
            "mlflow.runName": f"baseline-{base.template_id}-{base.configuration}",
            names.KIND: names.BASELINE, names.TEMPLATE_ID: base.template_id,
            names.CONFIGURATION: base.configuration,
            names.EVIDENCE: base.evidence,
            names.FINGERPRINT: ",".join(base.fingerprints),
            "ortools_version": ",".join(base.ortools_versions),
            **({names.SOURCE_RUN: base.source_run} if base.source_run else {})})
        rid = run.info.run_id
        params = {"template_id": base.template_id, "configuration": base.configuration,
                  "metric": base.metric, "evidence": base.evidence,
                  "config_hash": base.config_hash or "", "source_run": base.source_run or "",
                  "fingerprint": ",".join(base.fingerprints),
                  "ortools_version": ",".join(base.ortools_versions),
                  "instances": len(base.times)}
        client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()], metrics=[
            Metric("baseline_time", geometric_mean([floor_time(m) for m in medians]), 0, 0),
            Metric("n_times", sum(len(t) for t in base.times.values()), 0, 0)])
        stored = Distribution(**{**asdict(base), "run_id": rid})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / BASELINE_ARTIFACT
            path.write_text(json.dumps(stored.to_dict(), indent=1))
            client.log_artifact(rid, str(path))
        client.set_terminated(rid, "FINISHED")
        return stored

    def baseline(self, template_id: str, configuration: str | None = None) -> Distribution:
        """The latest baseline of ``template_id`` (of ``configuration`` when given)."""
        from fresh_solver import tracking

        tags = {names.KIND: names.BASELINE, names.TEMPLATE_ID: template_id}
        if configuration is not None:
            tags[names.CONFIGURATION] = configuration
        query = names.runs_where(tags)
        runs = self.client.search_runs([tracking.experiment_id(self.client, EXPERIMENT)],
                                       filter_string=query, order_by=["start_time DESC"],
                                       max_results=1)
        if not runs:
            which = f" of configuration {configuration!r}" if configuration else ""
            raise InputError(f"no baseline for template {template_id!r}{which}; establish "
                             "one with RegressionDetector().establish_baseline(...)")
        return self.load_run(runs[0].info.run_id)

    def load_run(self, run_id: str, configuration: str | None = None) -> Distribution:
        """The times a run holds: a stored baseline's distribution, or one configuration's
        times per instance in a benchmark run's ``runs.csv`` (the only configuration when
        ``configuration`` is None and there is one)."""
        from fresh_solver import tracking

        run = tracking.get_run(self.client, run_id)
        kind = run.data.tags.get(names.KIND)
        if kind == names.BASELINE:
            return self._load_baseline(run, configuration)
        if kind != names.BENCHMARK:
            raise InputError(f"MLflow run {run_id} is neither a benchmark nor a baseline run "
                             f"(fresh_solver.kind = {kind!r})")
        if run.info.status != "FINISHED":
            raise InputError(f"benchmark run {run_id} did not finish ({run.info.status})")
        return self._load_benchmark(run, configuration)

    def _load_baseline(self, run, configuration: str | None) -> Distribution:
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run.info.run_id, BASELINE_ARTIFACT, tmp)
            except (OSError, MlflowException):
                raise InputError(f"baseline run {run.info.run_id} has no "
                                 f"{BASELINE_ARTIFACT}") from None
            base = Distribution.from_dict(json.loads(Path(path).read_text()))
        params = run.data.params
        for key in ("template_id", "configuration", "evidence"):  # params are immutable
            if params.get(key) != getattr(base, key):
                raise InputError(f"baseline run {run.info.run_id}: {BASELINE_ARTIFACT} says "
                                 f"{key}={getattr(base, key)!r}, its param says "
                                 f"{params.get(key)!r}")
        if configuration is not None and configuration != base.configuration:
            raise InputError(f"baseline run {run.info.run_id} is of configuration "
                             f"{base.configuration!r}, not {configuration!r}")
        return base

    def _load_benchmark(self, run, configuration: str | None,
                        metric: str | None = None) -> Distribution:
        import pandas as pd
        from mlflow.exceptions import MlflowException

        metric = metric or self.metric
        rid = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            try:
                frame = pd.read_csv(self.client.download_artifacts(rid, "runs.csv", tmp))
            except (OSError, MlflowException):
                raise InputError(f"benchmark run {rid} has no runs.csv") from None
        missing = [c for c in (*REQUIRED_COLUMNS, metric) if c not in frame.columns]
        if missing:
            raise InputError(f"benchmark run {rid}: runs.csv lacks column(s) "
                             f"{', '.join(missing)}")
        configurations = list(dict.fromkeys(frame["configuration"].astype(str)))
        if configuration is None:
            if len(configurations) != 1:
                raise InputError(f"benchmark run {rid} compares {', '.join(configurations)}: "
                                 "name one with --configuration (configuration=...)")
            configuration = configurations[0]
        if configuration not in configurations:
            raise InputError(f"benchmark run {rid} has no configuration {configuration!r} "
                             f"(it has {', '.join(configurations)})")
        rows = frame[frame["configuration"].astype(str) == configuration]
        values = rows[metric].astype(float)
        if values.isna().any():
            limit = run.data.params.get("time_limit_s")
            if limit is None:
                raise InputError(f"benchmark run {rid}: {metric} has missing values and the "
                                 "run has no time_limit_s param to count them PAR2")
            values = values.fillna(2 * float(limit))
        times: dict[str, list[float]] = {}
        for instance, value in zip(rows["instance"].astype(str), values):
            times.setdefault(instance, []).append(float(value))
        params = run.data.params
        return Distribution(
            template_id=run.data.tags.get(names.TEMPLATE_ID, params.get(
                "template_id", "")),
            configuration=configuration, metric=metric, times=times,
            config_hash=params.get(f"config_hash.{metric_key(configuration)}"),
            ortools_versions=tuple(sorted(set(rows["ortools_version"].astype(str)))),
            fingerprints=tuple(sorted(set(rows["fingerprint"].astype(str)))),
            source_run=rid)

    # -- verdicts ----------------------------------------------------------------------------

    def check_regression(self, template_id: str,
                         current_times: dict[str, list[float]] | list[float] | None = None, *,
                         current_time: float | None = None, current_run: str | None = None,
                         baseline_run: str | None = None, configuration: str | None = None,
                         allow_mixed: bool = False) -> RegressionResult:
        """Is ``template_id`` slower now than its baseline? (module docstring)

        The current side is one of ``current_times`` (per instance, or a plain list for a
        one-instance baseline), ``current_time`` (the seed's single number, also accepted in
        ``current_times``'s place) — both taken as
        measured on this machine and OR-Tools — or ``current_run`` (a benchmark run id). The
        baseline is ``baseline_run`` (a baseline or benchmark run id) or else the latest stored
        baseline of the template (and ``configuration``).
        """
        if isinstance(current_times, int | float) and current_time is None:
            current_times, current_time = None, current_times  # the seed's positional form
        if sum(x is not None for x in (current_times, current_time, current_run)) != 1:
            raise InputError("give exactly one of current_times, current_time or current_run")
        base = (self.load_run(baseline_run, configuration) if baseline_run
                else self.baseline(template_id, configuration))
        if base.template_id != template_id:
            raise InputError(f"baseline run {base.run_id or base.source_run} is of template "
                             f"{base.template_id!r}, not {template_id!r}")
        if current_run is not None:
            current = self._current_from_run(current_run, base, configuration)
        else:
            current = self._current_here(base, current_times, current_time)
        return self.compare(base, current, allow_mixed=allow_mixed)

    def compare_runs(self, baseline_run: str, current_run: str,
                     configuration: str | None = None, *,
                     allow_mixed: bool = False) -> RegressionResult:
        """``benchmark regress``: the current benchmark run against a baseline or an earlier
        benchmark run, of the baseline's template."""
        base = self.load_run(baseline_run, configuration)
        return self.check_regression(base.template_id, current_run=current_run,
                                     baseline_run=baseline_run,
                                     configuration=configuration or base.configuration,
                                     allow_mixed=allow_mixed)

    def _current_from_run(self, run_id: str, base: Distribution,
                          configuration: str | None) -> Distribution:
        from fresh_solver import tracking

        run = tracking.get_run(self.client, run_id)
        if run.data.tags.get(names.KIND) != names.BENCHMARK:
            raise InputError(f"MLflow run {run_id} is not a benchmark run")
        if run.info.status != "FINISHED":
            raise InputError(f"benchmark run {run_id} did not finish ({run.info.status})")
        if configuration is None and base.configuration != ALL_INSTANCES:
            configuration = base.configuration
        metric = base.metric if base.metric in METRICS else self.metric
        current = self._load_benchmark(run, configuration, metric)
        if current.template_id != base.template_id:
            raise InputError(f"benchmark run {run_id} is of template {current.template_id!r}, "
                             f"the baseline of {base.template_id!r}")
        return current

    def _current_here(self, base: Distribution, current_times, current_time) -> Distribution:
        import ortools

        from fresh_solver.fingerprint import fingerprint_id

        if current_time is not None:
            current_times = [current_time]
        if isinstance(current_times, list | tuple):
            if base.evidence == "distribution" and len(base.times) != 1:
                raise InputError(f"the baseline has {len(base.times)} instances: give "
                                 "current_times per instance (a dict)")
            current_times = {next(iter(base.times)): list(current_times)}
        return Distribution(base.template_id, base.configuration, base.metric,
                            _checked_times(current_times),
                            evidence="distribution" if current_time is None else "single_number",
                            ortools_versions=(ortools.__version__,),
                            fingerprints=(fingerprint_id(),))

    def compare(self, base: Distribution, current: Distribution, *,
                allow_mixed: bool = False) -> RegressionResult:
        """The verdict of ``current`` against ``base`` (both already loaded)."""
        warnings = _context_warnings(base, current)
        if warnings and not allow_mixed:
            raise InputError([*warnings, "refusing to compare times measured in different "
                              "contexts (allow_mixed=True / --allow-mixed to compare anyway, "
                              "flagged)"])
        single = base.evidence == "single_number"
        current_times = current.times
        if single:  # one number for the template: every current time is compared with it
            current_times = {ALL_INSTANCES: [t for ts in current.times.values() for t in ts]}
            warnings.append("single-number baseline: weak evidence, decided on the threshold "
                            "alone, no test")
        if current.evidence == "single_number":
            warnings.append("one current measurement: weak evidence")
        if base.config_hash and current.config_hash and base.config_hash != current.config_hash:
            warnings.append(f"configuration hash differs (baseline {base.config_hash}, current "
                            f"{current.config_hash}): another parameter set")
        rows = compare_instances(base.times, current_times, threshold=self.threshold,
                                 alpha=self.alpha, correction=self.correction,
                                 n_resamples=self.n_resamples, single_number=single)
        if not rows:
            raise InputError(f"no instance in common: baseline has {sorted(base.times)}, "
                             f"current has {sorted(current_times)}")
        unmatched = sorted(set(base.times) ^ set(current_times))
        verdict = overall(rows)
        evidence = "single_number" if single or current.evidence == "single_number" else (
            "distribution")
        return RegressionResult(
            template_id=base.template_id, configuration=current.configuration,
            metric=current.metric, evidence=evidence, is_significant=bool(verdict.regressed),
            performance_change=verdict.effect - 1, effect=verdict.effect,
            baseline_time=geometric_mean([floor_time(r.baseline_median) for r in rows]),
            current_time=geometric_mean([floor_time(r.current_median) for r in rows]),
            p_value=verdict.p_value, severity=verdict.severity,
            rows=rows, threshold=self.threshold, alpha=self.alpha, correction=self.correction,
            mixed=bool(_context_warnings(base, current)), warnings=warnings,
            unmatched=unmatched, baseline_run_id=base.run_id or base.source_run,
            current_run_id=current.source_run)

    # -- history -----------------------------------------------------------------------------

    def history(self, template_id: str, configuration: str, *,
                max_runs: int = 100) -> list[dict[str, Any]]:
        """The template's finished benchmark runs that measured ``configuration``, oldest
        first, each with the geometric mean of its per-instance medians (``value``)."""
        from fresh_solver import tracking

        query = names.runs_where({names.KIND: names.BENCHMARK, names.TEMPLATE_ID: template_id},
                                 finished=True)
        runs = self.client.search_runs([tracking.experiment_id(self.client, EXPERIMENT)],
                                       filter_string=query, order_by=["start_time DESC"],
                                       max_results=max_runs)
        points = []
        for run in reversed(runs):
            try:
                sample = self._load_benchmark(run, configuration)
            except InputError:  # this run did not measure the configuration
                continue
            points.append({
                "run_id": run.info.run_id, "start_time": run.info.start_time,
                "value": geometric_mean([floor_time(median(t)) for t in sample.times.values()]),
                "fingerprints": list(sample.fingerprints),
                "ortools_versions": list(sample.ortools_versions)})
        return points

    def slowdowns(self, template_id: str, configuration: str, *,
                  max_runs: int = 100) -> dict[str, Any]:
        """Where in the history the level changed (:func:`change_points`), each change with
        the run it started at, its ratio (new level / old, > 1 a slow-down), and whether the
        machine or OR-Tools changed there too (then it may not be the configuration's)."""
        points = self.history(template_id, configuration, max_runs=max_runs)
        cuts = change_points([p["value"] for p in points])
        changes = []
        for k, start in enumerate(cuts):
            before = points[(cuts[k - 1] if k else 0):start]
            after = points[start:(cuts[k + 1] if k + 1 < len(cuts) else len(points))]
            level_before = median(p["value"] for p in before)
            level_after = median(p["value"] for p in after)
            context = {(tuple(p["fingerprints"]), tuple(p["ortools_versions"]))
                       for p in (points[start - 1], points[start])}
            changes.append({"index": start, "run_id": points[start]["run_id"],
                            "ratio": level_after / floor_time(level_before),
                            "slowdown": level_after > level_before,
                            "context_changed": len(context) > 1})
        return {"template_id": template_id, "configuration": configuration,
                "history": points, "changes": changes}


def _checked_times(times: Any) -> dict[str, list[float]]:
    """Times per instance, each a non-empty list of non-negative seconds."""
    if not isinstance(times, dict) or not times:
        raise InputError("times must be a non-empty mapping of instance -> list of seconds")
    bad = [str(name) for name, values in times.items()
           if not isinstance(values, list | tuple) or not values
           or not all(isinstance(v, int | float) and v >= 0 and math.isfinite(v)
                      for v in values)]
    if bad:
        raise InputError(f"times of {', '.join(bad)}: need a non-empty list of finite seconds "
                         ">= 0")
    return {str(name): [float(v) for v in values] for name, values in times.items()}


def _context_warnings(base: Distribution, current: Distribution) -> list[str]:
    """What differs between where the baseline and the current times were measured."""
    problems = []
    for what, a, b in (("machine fingerprint", base.fingerprints, current.fingerprints),
                       ("OR-Tools version", base.ortools_versions, current.ortools_versions)):
        if set(a) != set(b) or len(set(a)) > 1:
            problems.append(f"{what} differs: baseline {', '.join(a) or '?'}, current "
                            f"{', '.join(b) or '?'}")
    return problems

