"""The daily benchmark lifecycle, one function per task of the `fresh_solver_benchmark` DAG.

plan → (benchmark → detect → revalidate) per template → summarise

- :func:`plan`: every registered template whose Production version is served, with the
  instances to measure it on (held-out instances, as the retune lays them out).
- :func:`benchmark`: the Production set against the CP-SAT defaults on the same instances,
  seeds and repetitions (paired; the defaults run first and set the targets), one MLflow run in
  ``fresh-solver/benchmarks``.
- :func:`detect`: is the Production set slower than it was? Against the template's stored
  baseline for this parameter set, machine and OR-Tools version (established from this run
  when there is none). A significant regression is recorded on the benchmark run and alerted.
- :func:`revalidate`: the served version re-validated against the defaults when this machine
  or this OR-Tools is not the one it was validated on; the verdict goes on the version.
- :func:`summarise`: one report and a log line.

**Why the detector judges the Production set relative to the defaults.** A baseline measured
on another day on this shared machine carries that day's load: compared with it, the
absolute times of an unchanged configuration raised false alarms in 47-99 % of A/A trials
(``out/detector_power/report.md``, "A/A later block", 5-20 repetitions). So every benchmark
here measures the CP-SAT defaults beside the Production set, and the detector compares the
per-pair ratio *Production time / defaults time* (same instance, seed and repetition, run
back to back) with the same ratio in the baseline run: load that slows both cancels out. On
the detector benchmark's measured solve times, at 8 repetitions, this relative comparison
raised a false alarm in 2.3 % of later-block A/A trials where the absolute one did in 40 %,
and caught a 1.5x slow-down in 91 % (``python -m benchmarks.relative_power``).
The absolute change and the defaults' own drift are reported beside the verdict, for reading
only.

Idempotent: a benchmark is tagged with the Airflow run id (``fresh_solver.airflow_run``) and a
retry reuses the FINISHED one; a verdict recorded on a benchmark run is returned as recorded
(and its alert, keyed by the run, is sent once); a re-validation already made on this machine
and OR-Tools for the served version is reused, not run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.lifecycle.benchmark_settings import (
    FALLBACK_REVALIDATION_SEEDS,
    FALLBACK_REVALIDATION_TIME_LIMIT,
    resolve,
    selected,
)
from fresh_solver.tracking import names

log = logging.getLogger("fresh_solver.lifecycle")

PRODUCTION, DEFAULTS = "production", "template"
CONFIGURATIONS = (DEFAULTS, PRODUCTION)  # the first is the reference: it sets the targets
VERDICT_ARTIFACT = "regression.json"
RULE_KEYS = ("min_speedup", "max_p_value", "min_speedup_vs_production", "quality_tolerance")
# The detector's severities as the alert channels' (critical, warning, info).
ALERT_SEVERITY = {"minor": "warning", "major": "warning", "critical": "critical"}
MEASURE = ("per (instance, seed, repetition): Production time to target / CP-SAT defaults "
           "time to target in the same run")


class _Skip(Exception):
    """A template the plan cannot benchmark, and why."""


# ---- plan -----------------------------------------------------------------------------------
def plan(conf: dict[str, Any] | None, templates_file: str | Path | None = None
         ) -> dict[str, Any]:
    """The templates to benchmark today and the ones skipped (with why).

    A template is benchmarked when the registry serves a Production version for it. Its
    instances are the held-out ones of its ``[[retune]]`` entry in ``templates_file`` (the
    same generator settings or folder the retune uses, so the same files), else the held-out
    files its served version was validated on when they are still under
    ``$FRESH_SOLVER_HOME/instances`` with the same content; else it is skipped. The first
    ``instances`` of them are benchmarked; re-validation uses all."""
    from fresh_solver.registry.registry import ParameterRegistry, model_name

    settings = resolve(conf)
    registry = ParameterRegistry()
    registered = registry.templates()
    wanted = selected(settings)
    if wanted is not None:
        unknown = [t for t in wanted if t not in registered]
        if unknown:
            raise InputError(f"params.templates: {', '.join(unknown)} not registered "
                             f"(registered: {', '.join(registered) or 'none'})")
    entries = _retune_entries(templates_file)
    templates, skipped = [], []
    for template_id in wanted or registered:
        version = registry.serving(template_id).version
        try:
            if version is None:
                raise _Skip("no served Production version")
            source, held_out = _instance_source(registry, template_id, version,
                                                entries.get(template_id))
        except _Skip as why:
            log.warning("benchmark: skipping %s: %s", template_id, why)
            skipped.append({"template_id": template_id, "reason": str(why)})
            continue
        templates.append({"template_id": template_id, "model": model_name(template_id),
                          "version": version, "source": source,
                          "instances": held_out[:settings["instances"]], "held_out": held_out,
                          "settings": settings})
        log.info("benchmark: %s v%s on %d of %d held-out instances (%s)", template_id,
                 version, min(len(held_out), settings["instances"]), len(held_out), source)
    return {"templates": templates, "skipped": skipped}


def _retune_entries(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """``[[retune]]`` tables by template id; none when there is no such file."""
    from fresh_solver.lifecycle.settings import scheduled_confs

    if path is None or not Path(path).is_file():
        log.info("benchmark: no retune templates file %s: instances come from the served "
                 "versions' validation sets", path)
        return {}
    return {entry["template_id"]: entry for entry in scheduled_confs(path)}


def _instance_source(registry, template_id: str, version: str,
                     entry: dict[str, Any] | None) -> tuple[str, list[str]]:
    if entry is None:
        return _validation_set(registry, template_id, version)
    from fresh_solver.lifecycle import retune
    from fresh_solver.lifecycle.settings import resolve as resolve_retune

    settings = resolve_retune(entry)
    try:
        if settings["instances_folder"]:
            _, held_out = retune.split_folder(Path(settings["instances_folder"]),
                                               template_id, settings["held_out_fraction"])
            return f"held-out files of {settings['instances_folder']}", held_out
        _, held_out = retune.generate_instances(template_id, settings)
    except InputError as exc:
        raise _Skip("its retune_templates.toml entry gives no instances: "
                    + "; ".join(exc.problems)) from None
    return (f"generated {settings['generator_scale']} family {settings['generator_seed']}, "
            "held-out instance seeds", held_out)


def _validation_set(registry, template_id: str, version: str) -> tuple[str, list[str]]:
    """The files ``version`` was validated on, found again by name and content hash."""
    from mlflow.exceptions import MlflowException

    from fresh_solver import tracking
    from fresh_solver.tuning.record import read_json
    from fresh_solver.tuning.session import instance_set_hash

    run_id = registry.version(template_id, version).tags.get("validation_run_id")
    if not run_id:
        raise _Skip(f"not in retune_templates.toml, and v{version} names no validation run")
    try:
        report = read_json(registry.client, run_id, "validation_report.json")
    except (OSError, MlflowException, ValueError):
        raise _Skip(f"not in retune_templates.toml, and v{version}'s validation run {run_id} "
                    "has no readable validation_report.json") from None
    instances, expected = report.get("instances") or [], report.get("instance_set")
    folder = tracking.home() / "instances" / template_id
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        paths = [str(sub / name) for name in instances]
        if instances and all(Path(p).is_file() for p in paths) and \
                instance_set_hash(paths) == expected:
            return f"the held-out set v{version} was validated on", paths
    raise _Skip(f"not in retune_templates.toml, and the {len(instances)} instances v{version} was "
                f"validated on (set {expected}) are not under {folder}")


def _checked(template_plan: Any) -> dict[str, Any]:
    """A template plan as :func:`plan` makes it, its settings checked again."""
    keys = ("template_id", "model", "version", "instances", "held_out", "settings")
    if not isinstance(template_plan, dict):
        raise InputError(f"template plan: expected a mapping, got {type(template_plan).__name__}")
    problems = [f"template plan: missing {k!r}" for k in keys if k not in template_plan]
    if problems:
        raise InputError(problems)
    for key in ("instances", "held_out"):
        paths = template_plan[key]
        if not isinstance(paths, list) or not paths or not all(
                isinstance(p, str) for p in paths):
            problems.append(f"template plan: {key} must be a non-empty list of problem files")
    if problems:
        raise InputError(problems)
    return {**template_plan, "settings": resolve(template_plan["settings"])}


# ---- benchmark ------------------------------------------------------------------------------
def benchmark(template_plan: dict[str, Any], run_key: str | None = None) -> dict[str, Any]:
    """Run the Production set and the CP-SAT defaults paired (the defaults set the targets)
    and return the benchmark's MLflow run id with its essentials. With ``run_key`` (the
    Airflow run id) the run is tagged with it, and a FINISHED run already tagged for this
    template and key is returned instead of measuring again (a retried task)."""
    from fresh_solver import production, tracking
    from fresh_solver.performance.definitions import TemplateBenchmark
    from fresh_solver.performance.mlflow_run import EXPERIMENT, load_benchmark
    from fresh_solver.performance.runner import run_benchmark

    plan_ = _checked(template_plan)
    template_id, settings = plan_["template_id"], plan_["settings"]
    client = tracking.client()
    if run_key:
        done = client.search_runs(
            [tracking.experiment_id(client, EXPERIMENT)],
            filter_string=names.runs_where({names.KIND: names.BENCHMARK,
                                            names.TEMPLATE_ID: template_id,
                                            names.AIRFLOW_RUN: run_key}, finished=True),
            order_by=["start_time DESC"], max_results=1)
        if done:
            _, summary = load_benchmark(done[0].info.run_id)
            log.info("benchmark %s: reusing run %s of %s", template_id, done[0].info.run_id,
                     run_key)
            return _measured(template_id, done[0].info.run_id, summary, reused=True)
    production.refresh(template_id)  # measure what the registry serves now, not a cached set
    definition = TemplateBenchmark(
        template_id=template_id, problems=tuple(plan_["instances"]),
        time_limit_seconds=float(settings["time_limit"]), repetitions=settings["repetitions"],
        seeds=tuple(range(settings["seeds"])), configurations=CONFIGURATIONS)
    suite = run_benchmark(definition, progress=False)
    if run_key:
        client.set_tag(suite.run_id, names.AIRFLOW_RUN, run_key)
    measured = _measured(template_id, suite.run_id, suite.summary, reused=False)
    log.info("benchmark %s: run %s, Production (%s) %s vs the CP-SAT defaults", template_id,
             suite.run_id, measured["params_source"], _speedup_text(measured["speedup"]))
    return measured


def _measured(template_id: str, run_id: str, summary: dict[str, Any], *,
              reused: bool) -> dict[str, Any]:
    configs = summary["configurations"]
    prod = configs[PRODUCTION]
    return {"template_id": template_id, "run_id": run_id, "reused": reused,
            "params_source": prod["params_source"], "config_hash": prod["config_hash"],
            "speedup": prod["speedup_vs_reference"],  # defaults' time / Production's, paired
            "geomean_ttt_s": {n: (c["ttt_s"] or {}).get("geomean") for n, c in configs.items()},
            "solved": {n: f"{c['solved']}/{c['runs']}" for n, c in configs.items()},
            "num_workers": sorted({w for c in configs.values() for w in c["num_workers"]}),
            "ortools_version": summary["ortools_version"],
            "fingerprint": summary["fingerprint"]}


def _speedup_text(speedup: dict[str, float] | None) -> str:
    if not speedup:
        return "n/a"
    return (f"{speedup['geomean']:.2f}x geomean speedup [{speedup['min']:.2f}-"
            f"{speedup['max']:.2f}] over {speedup['n']} pairs")


# ---- detect ---------------------------------------------------------------------------------
def detect(template_plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The verdict on benchmark run ``run_id``: ``baseline_established`` (no baseline for this
    parameter set, machine, OR-Tools version and instance set yet: this run becomes it),
    ``regression`` / ``no_regression``, or ``not_compared`` (the Production set was not served
    from the registry). Compared per instance: the ratio Production / defaults of each pair
    now against the same ratios in the baseline's run, with the detector's test (one-sided
    Mann-Whitney, Holm across instances, at least ``threshold`` slower): relative to the
    defaults measured in the same run, because machine load drifts between days (module
    docstring). Recorded on the run (tags, params, metrics, ``regression.json``); a
    regression is alerted once per run."""
    from fresh_solver import tracking
    from fresh_solver.tuning.record import read_json

    plan_ = _checked(template_plan)
    template_id = plan_["template_id"]
    client = tracking.client()
    run = tracking.get_run(client, run_id)
    tags, params = run.data.tags, run.data.params
    if tags.get(names.KIND) != names.BENCHMARK or \
            tags.get(names.TEMPLATE_ID) != template_id:
        raise InputError(f"MLflow run {run_id} is not a benchmark of template {template_id!r}")
    if set(params.get("configurations", "").split(",")) != set(CONFIGURATIONS):
        raise InputError(f"benchmark run {run_id} compares {params.get('configurations')!r}, "
                         f"not {' and '.join(CONFIGURATIONS)}")
    if names.REGRESSION in tags:
        verdict = read_json(client, run_id, VERDICT_ARTIFACT)
        log.info("benchmark %s: run %s already judged: %s", template_id, run_id,
                 verdict["message"])
    else:
        verdict = _judge(client, plan_, run)
        _record(client, run_id, verdict)
        log.info("benchmark %s: %s", template_id, verdict["message"])
    if verdict["status"] == "regression":
        _alert_regression(verdict)
    return verdict


def _judge(client, plan_: dict[str, Any], run) -> dict[str, Any]:
    from fresh_solver.performance.mlflow_run import load_benchmark
    from fresh_solver.performance.regression import RegressionDetector
    from fresh_solver.performance.regression_stats import compare_relative

    template_id, settings = plan_["template_id"], plan_["settings"]
    run_id, params = run.info.run_id, run.data.params
    verdict: dict[str, Any] = {"template_id": template_id, "run_id": run_id,
                               "measure": MEASURE, "threshold": settings["threshold"],
                               "alpha": settings["alpha"], "severity": "none"}
    source = params.get(f"params_source.{PRODUCTION}", "")
    if not source.startswith("registry:"):
        return verdict | {"status": "not_compared", "message": (
            f"not compared: the benchmark ran the Production configuration from {source!r}, "
            "not from the registry")}
    context = {"config_hash": params[f"config_hash.{PRODUCTION}"],
               "fingerprint": params["fingerprint"], "ortools_version": params["ortools_version"],
               "key": _benchmark_key(params)}
    verdict |= {"params_source": source, "config_hash": context["config_hash"],
                "fingerprint": context["fingerprint"],
                "ortools_version": context["ortools_version"]}
    baseline = _find_baseline(client, template_id, context, run_id)
    if baseline is None or baseline[1] == run_id:
        if baseline is None:
            stored = RegressionDetector(threshold=settings["threshold"],
                                        alpha=settings["alpha"]).establish_baseline(
                template_id, from_run=run_id, configuration=PRODUCTION)
            baseline = (stored.run_id, run_id)
        client.set_tag(baseline[0], names.BENCHMARK_KEY, context["key"])  # again on a retry
        return verdict | {"status": "baseline_established", "baseline_run": baseline[0],
                          "baseline_source_run": run_id, "message": (
            f"baseline established (run {baseline[0]}) from benchmark run {run_id} for "
            f"{source} on machine {context['fingerprint']}, OR-Tools "
            f"{context['ortools_version']}: later runs are compared with it")}
    baseline_run, source_run = baseline
    before, _ = load_benchmark(source_run)
    now, _ = load_benchmark(run_id)
    return verdict | {"baseline_run": baseline_run, "baseline_source_run": source_run} | \
        compare_relative(before, now, candidate=PRODUCTION, reference=DEFAULTS,
                         labels=("Production", "the defaults"),
                         threshold=settings["threshold"], alpha=settings["alpha"])


def _benchmark_key(params: dict[str, str]) -> str:
    """What must be equal for two benchmarks' ratios to be comparable: the instances (their
    content), the seeds and the cap (which sets unproven targets). From immutable params."""
    text = json.dumps([params.get("instance_set"), params.get("seeds"),
                       params.get("time_limit_s")])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _find_baseline(client, template_id: str, context: dict[str, str],
                   run_id: str) -> tuple[str, str] | None:
    """(baseline run, its benchmark run) for this parameter set, machine, OR-Tools and
    benchmark key, newest first; a baseline already made from ``run_id`` itself wins (a
    retried task). Matched on the baseline's and its source run's immutable params."""
    from fresh_solver import tracking
    from fresh_solver.performance.mlflow_run import EXPERIMENT

    found = client.search_runs(
        [tracking.experiment_id(client, EXPERIMENT)],
        filter_string=names.runs_where(
            {names.KIND: names.BASELINE, names.TEMPLATE_ID: template_id},
            {"configuration": PRODUCTION, "config_hash": context["config_hash"],
             "fingerprint": context["fingerprint"],
             "ortools_version": context["ortools_version"], "evidence": "distribution"},
            finished=True),
        order_by=["start_time DESC"], max_results=200)
    for candidate in found:
        if candidate.data.params.get("source_run") == run_id:
            return candidate.info.run_id, run_id
    for candidate in found:
        source = candidate.data.params.get("source_run")
        if not source or candidate.data.tags.get(names.BENCHMARK_KEY) != context["key"]:
            continue
        source_run = tracking.get_run(client, source)
        if source_run.info.status == "FINISHED" and \
                _benchmark_key(source_run.data.params) == context["key"]:
            return candidate.info.run_id, source
    return None


def _record(client, run_id: str, verdict: dict[str, Any]) -> None:
    """The verdict on the benchmark run: ``regression.json``, params (immutable), metrics,
    and last the tags people read (``fresh_solver.regression`` marks it judged)."""
    import tempfile

    from mlflow.entities import Metric, Param

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / VERDICT_ARTIFACT
        path.write_text(json.dumps(verdict, indent=1))
        client.log_artifact(run_id, str(path))
    params = {"regression.status": verdict["status"],
              "regression.severity": verdict["severity"],
              "regression.baseline_run": verdict.get("baseline_run") or "",
              "regression.threshold": str(verdict["threshold"]),
              "regression.alpha": str(verdict["alpha"])}
    now = int(time.time() * 1000)
    metrics = {f"regression.{k}": verdict[k] for k in (
        "performance_change", "p_value", "machine_drift", "absolute_change")
        if verdict.get(k) is not None}
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                     metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    client.set_tag(run_id, names.REGRESSION_SEVERITY, verdict["severity"])
    if verdict.get("baseline_run"):
        client.set_tag(run_id, names.BASELINE_RUN, verdict["baseline_run"])
    client.set_tag(run_id, names.REGRESSION, verdict["status"])


def _alert_regression(verdict: dict[str, Any]) -> None:
    """Through the operations channels, once per benchmark run however often retried."""
    from fresh_solver.operations.alerts import AlertManager

    template_id = verdict["template_id"]
    queued = AlertManager().notify(
        "benchmark_regression",
        f"fresh-solver benchmark of template {template_id!r}: {verdict['message']} "
        f"(benchmark run {verdict['run_id']}, baseline run {verdict['baseline_run']})",
        severity=ALERT_SEVERITY[verdict["severity"]], template_id=template_id,
        details={k: verdict.get(k) for k in (
            "run_id", "baseline_run", "baseline_source_run", "severity", "performance_change",
            "p_value", "regressed", "machine_drift", "absolute_change", "params_source",
            "config_hash")},
        key=verdict["run_id"])
    log.log(logging.WARNING if queued else logging.INFO, "benchmark %s: regression alert %s",
            template_id, "queued" if queued else "already sent for this run")


# ---- revalidate -----------------------------------------------------------------------------
def revalidation_reasons(tags: dict[str, str], ortools_version: str,
                         fingerprint: str) -> list[str]:
    """Why a version's validation does not hold here: its ``ortools_version`` or
    ``machine_fingerprint`` tag names another OR-Tools or machine (a missing tag says
    nothing)."""
    reasons = []
    if tags.get("ortools_version") and tags["ortools_version"] != ortools_version:
        reasons.append(f"validated on OR-Tools {tags['ortools_version']}, this is "
                       f"{ortools_version}")
    if tags.get("machine_fingerprint") and tags["machine_fingerprint"] != fingerprint:
        reasons.append(f"validated on machine {tags['machine_fingerprint']}, this is "
                       f"{fingerprint}")
    return reasons


def revalidate(template_plan: dict[str, Any], run_key: str | None = None) -> dict[str, Any]:
    """Re-validate the served version against the CP-SAT defaults on the held-out instances
    when it was validated on another OR-Tools or machine (else ``not_needed``). Seeds, time
    limit and pass rule are the version's own validation's (params of its validation run),
    unless the settings give seeds / a time limit. The validation run (tag
    ``fresh_solver.revalidates`` = ``<model>/<version>``; params ``machine_fingerprint``,
    ``ortools_version``, ``revalidates``) is the immutable evidence; the version gets the tags
    ``revalidation_status``, ``revalidated_at``, ``revalidation_run_id``,
    ``revalidated_ortools_version`` and ``revalidated_machine_fingerprint`` for people. A
    re-validation already made here (same version, machine and OR-Tools) is reused. A failed
    one is alerted once."""
    import ortools

    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.registry.registry import ParameterRegistry, model_name

    plan_ = _checked(template_plan)
    template_id = plan_["template_id"]
    registry = ParameterRegistry()
    version = registry.serving(template_id).version
    result: dict[str, Any] = {"template_id": template_id, "version": version}
    if version is None:
        return result | {"status": "not_needed", "reasons": ["no served Production version"]}
    mv = registry.version(template_id, version)
    here, installed = fingerprint_id(), ortools.__version__
    reasons = revalidation_reasons(mv.tags, installed, here)
    if not reasons:
        log.info("benchmark %s: v%s was validated on this OR-Tools and machine (or does not "
                 "say otherwise): re-validation not needed", template_id, version)
        return result | {"status": "not_needed", "reasons": []}
    subject = f"{model_name(template_id)}/{version}"
    config = registry.load_config(template_id, version)
    report = _recorded_revalidation(registry.client, template_id, subject, config.hash,
                                    here, installed)
    if report is None:
        report = _run_revalidation(registry, plan_, mv, config, subject, run_key)
    status = "passed" if report["passed"] else "failed"
    for key, value in {"revalidation_status": status, "revalidated_at": report["validated_at"],
                       "revalidation_run_id": report["run_id"],
                       "revalidated_ortools_version": installed,
                       "revalidated_machine_fingerprint": here}.items():
        registry.client.set_model_version_tag(model_name(template_id), version, key, value)
    message = (f"re-validation of {subject} ({'; '.join(reasons)}): {status.upper()}, "
               f"{report['summary']}")
    log.info("benchmark %s: %s", template_id, message)
    if status == "failed":
        from fresh_solver.operations.alerts import AlertManager

        AlertManager().notify("revalidation_failed", message, severity="warning",
                              template_id=template_id, key=report["run_id"],
                              details={"version": version, "validation_run_id": report["run_id"],
                                       "reasons": reasons, "failed_because": report["reasons"]})
    return result | {"status": status, "reasons": reasons,
                     "validation_run_id": report["run_id"],
                     "speedup_factor": report["speedup_factor"], "message": message}


def _recorded_revalidation(client, template_id: str, subject: str, config_hash: str,
                           fingerprint: str, ortools_version: str) -> dict[str, Any] | None:
    """The report of a finished re-validation of ``subject`` on this machine and OR-Tools."""
    from fresh_solver import tracking
    from fresh_solver.tuning.record import read_json

    experiment = client.get_experiment_by_name(tracking.validation_experiment(template_id))
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=names.runs_where(
            {names.REVALIDATES: subject, names.CONFIG_HASH: config_hash,
             "ortools_version": ortools_version},
            {"machine_fingerprint": fingerprint}, finished=True),
        order_by=["start_time DESC"], max_results=1)
    return read_json(client, found[0].info.run_id, "validation_report.json") if found else None


def _run_revalidation(registry, plan_: dict[str, Any], mv, config, subject: str,
                      run_key: str | None) -> dict[str, Any]:
    import ortools
    from mlflow.entities import Param

    from fresh_solver.validation.compare import PassRule
    from fresh_solver.validation.validator import validate

    template_id, settings = plan_["template_id"], plan_["settings"]
    validated = {}
    if mv.tags.get("validation_run_id"):
        from fresh_solver import tracking

        try:
            validated = tracking.get_run(registry.client,
                                         mv.tags["validation_run_id"]).data.params
        except InputError:  # the run is gone: fall back to the settings
            validated = {}
    seeds = settings["revalidation_seeds"] or int(validated.get(
        "seeds", FALLBACK_REVALIDATION_SEEDS))
    time_limit = settings["revalidation_time_limit"] or float(validated.get(
        "time_limit_s", FALLBACK_REVALIDATION_TIME_LIMIT))
    rule = PassRule(**{k: float(validated[k]) for k in RULE_KEYS}) if all(
        k in validated for k in RULE_KEYS) else PassRule()
    tags = {names.REVALIDATES: subject, **({names.AIRFLOW_RUN: run_key} if run_key else {})}
    report = validate(template_id, config, tuple(plan_["held_out"]), list(range(seeds)),
                      time_limit, rule, None, tags=tags,
                      log=lambda message: log.info("benchmark %s: re-validation: %s",
                                                   template_id, message),
                      metric=validated.get("metric", "time_to_target"))  # as it was judged
    registry.client.log_batch(report.run_id, params=[
        Param("revalidates", subject), Param("ortools_version", ortools.__version__)])
    return report.to_dict()


# ---- summarise ------------------------------------------------------------------------------
def summarise(planned: dict[str, Any], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The day's report: per template its benchmark, verdict and re-validation (each outcome
    ``{"benchmark": ..., "detection": ..., "revalidation": ...}`` as the tasks returned them),
    the skipped templates and why; one log line per template."""
    lines, regressions, established, revalidated = [], [], [], []
    for outcome in outcomes:
        measured, verdict = outcome["benchmark"], outcome["detection"]
        again = outcome["revalidation"]
        template_id = measured["template_id"]
        if verdict["status"] == "regression":
            regressions.append(template_id)
        elif verdict["status"] == "baseline_established":
            established.append(template_id)
        if again["status"] != "not_needed":
            revalidated.append(template_id)
        lines.append(f"{template_id}: Production ({measured['params_source']}) "
                     f"{_speedup_text(measured['speedup'])} vs the CP-SAT defaults "
                     f"(run {measured['run_id']}); {verdict['message']}; re-validation "
                     f"{again['status'].replace('_', ' ')}")
    lines += [f"{s['template_id']}: skipped ({s['reason']})" for s in planned["skipped"]]
    if not lines:
        lines.append("no registered template: nothing to benchmark")
    for line in lines:
        log.info("benchmark: %s", line)
    return {"benchmarked": [o["benchmark"]["template_id"] for o in outcomes],
            "skipped": planned["skipped"], "regressions": regressions,
            "baselines_established": established, "revalidated": revalidated,
            "lines": lines, "message": "\n".join(lines)}

