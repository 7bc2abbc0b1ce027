"""Every benchmark is one MLflow run in ``fresh-solver/benchmarks`` (DESIGN §6).

The run is created before the first solve (bad input never creates one) and ends FINISHED, or
FAILED / KILLED when the benchmark raised or was interrupted. Layout:

- tags: ``fresh_solver.kind`` = ``benchmark``, ``fresh_solver.template_id`` (the definition's
  template, else the one template all instances share, else ``mixed``),
  ``fresh_solver.fingerprint``, ``fresh_solver.reference``, ``ortools_version``,
  ``mlflow.runName`` = ``benchmark-<template_id>``.
- params (immutable): ``definition`` (its JSON), ``template_id``, ``configurations`` and
  ``reference``, ``instances``, ``instance_counts``, ``instance_set`` (hash of the problems),
  ``seeds``, ``time_limit_s``, ``repetitions``, ``ortools_version``, ``fingerprint`` and
  ``machine`` (its JSON); per configuration ``config_hash.<key>``, ``params_source.<key>``
  and ``model.<key>``; at the end ``num_workers`` (the distinct values over all runs).
- metrics: ``average_speedup``; per configuration (``<key>`` = :func:`metric_key` of its name)
  ``<key>.runs``, ``.solved``, ``.optimal``, ``.reached_target``, ``.geomean_ttt_s``,
  ``.median_ttt_s``, ``.peak_rss_mb``, ``.scaling_exponent`` (with two sizes or more), and
  against the reference ``.speedup_vs_reference`` (geometric mean), ``.speedup_min``,
  ``.speedup_max``; per scale with instances ``<key>.<scale>.speedup_vs_reference`` and
  ``<key>.<scale>.solved``; the targets table ``template_vs_baseline.<scale>.speedup``.
- artifacts: ``runs.csv``, ``summary.json``, ``report.md``, ``ttt_by_jobs.png``,
  ``scaling.png``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.tracking import names

EXPERIMENT = "fresh-solver/benchmarks"
MAX_PARAM = 6000  # MLflow's limit on a param value


def metric_key(name: str) -> str:
    """A configuration name as MLflow accepts it in a metric or param key (``file:a/b.json``
    becomes ``file_a_b.json``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def template_tag(definition, instances: dict[str, Any]) -> str:
    """The template a benchmark is about: the definition's, else the instances' only one."""
    if definition.template_id:
        return definition.template_id
    ids = {t.id for problem in instances.values() for t in problem.templates}
    return ids.pop() if len(ids) == 1 else "mixed"


def instance_set_hash(instances: dict[str, Any]) -> str:
    """16 hex digits naming the exact problems (and their names): two benchmarks with equal
    hashes ran the same instances."""
    from fresh_solver.model import problem_to_dict

    text = json.dumps({name: problem_to_dict(p) for name, p in instances.items()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 1] + "…"


@dataclass
class BenchmarkRecord:
    """The benchmark's MLflow run while it is being measured."""

    client: Any
    run_id: str

    def finish(self, summary: dict[str, Any], files: list[Path]) -> None:
        """Metrics, the last param, the artifacts; the run ends FINISHED."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        metrics = summary_metrics(summary)
        workers = sorted({n for c in summary["configurations"].values()
                          for n in c["num_workers"]})
        self.client.log_batch(self.run_id,
                              metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                              params=[Param("num_workers", ",".join(map(str, workers)))])
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")

    def abort(self, status: str) -> None:
        """End the run FAILED or KILLED (the benchmark raised or was interrupted)."""
        self.client.set_terminated(self.run_id, status)


def start(definition, instances: dict[str, Any], configurations, machine: dict[str, str],
          fingerprint: str) -> BenchmarkRecord:
    """Create the run with its tags and params (module docstring)."""
    import ortools
    from mlflow.entities import Param

    from fresh_solver import tracking

    client = tracking.client()
    template_id = template_tag(definition, instances)
    reference = configurations[0].name
    run = client.create_run(tracking.experiment_id(client, EXPERIMENT), tags={
        "mlflow.runName": f"benchmark-{template_id}", names.KIND: names.BENCHMARK,
        names.TEMPLATE_ID: template_id, names.FINGERPRINT: fingerprint,
        names.REFERENCE: reference, "ortools_version": ortools.__version__})
    params: dict[str, Any] = {
        "definition": definition.to_dict(), "template_id": template_id,
        "configurations": ",".join(c.name for c in configurations), "reference": reference,
        "instances": ",".join(instances), "instance_counts": list(definition.instance_counts),
        "instance_set": instance_set_hash(instances), "seeds": list(definition.seeds),
        "time_limit_s": str(float(definition.time_limit_seconds)),
        "repetitions": str(definition.repetitions), "ortools_version": ortools.__version__,
        "fingerprint": fingerprint, "machine": machine}
    for c in configurations:
        key = metric_key(c.name)
        params |= {f"config_hash.{key}": c.config.hash, f"params_source.{key}": c.params_source,
                   f"model.{key}": c.model}
    client.log_batch(run.info.run_id, params=[Param(k, _param(v)) for k, v in params.items()])
    return BenchmarkRecord(client, run.info.run_id)


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The run's metrics from the summary (module docstring); figures that do not exist (no
    fit, no speedup for the reference) are left out rather than logged as NaN."""
    metrics: dict[str, float] = {}
    if summary["average_speedup"] is not None:
        metrics["average_speedup"] = summary["average_speedup"]
    for name, c in summary["configurations"].items():
        key = metric_key(name)
        metrics |= {f"{key}.runs": c["runs"], f"{key}.solved": c["solved"],
                    f"{key}.optimal": c["optimal"], f"{key}.reached_target": c["reached_target"],
                    f"{key}.peak_rss_mb": c["peak_rss_mb"]}
        if c["ttt_s"]:
            metrics |= {f"{key}.geomean_ttt_s": c["ttt_s"]["geomean"],
                        f"{key}.median_ttt_s": c["ttt_s"]["median"]}
        if c["scaling_exponent"] is not None:
            metrics[f"{key}.scaling_exponent"] = c["scaling_exponent"]
        if c["speedup_vs_reference"]:
            s = c["speedup_vs_reference"]
            metrics |= {f"{key}.speedup_vs_reference": s["geomean"],
                        f"{key}.speedup_min": s["min"], f"{key}.speedup_max": s["max"]}
    for scale, block in summary["scales"].items():
        for name, c in block["configurations"].items():
            key = metric_key(name)
            metrics[f"{key}.{scale}.solved"] = c["solved"]
            if c["speedup_vs_reference"]:
                metrics[f"{key}.{scale}.speedup_vs_reference"] = (
                    c["speedup_vs_reference"]["geomean"])
    for row in summary["performance_targets"]:
        if row["speedup"]:
            metrics[f"template_vs_baseline.{row['scale']}.speedup"] = row["speedup"]["geomean"]
    return metrics


def load_benchmark(run_id: str) -> tuple[Any, dict[str, Any]]:
    """A benchmark run's ``runs.csv`` (a DataFrame of :data:`runner.COLUMNS`) and
    ``summary.json``, for whoever compares benchmarks (the regression detector). An unknown
    run, or a run that is not a benchmark, is an :class:`InputError`."""
    import pandas as pd

    from fresh_solver import tracking
    from fresh_solver.errors import InputError

    client = tracking.client()
    run = tracking.get_run(client, run_id)
    if run.data.tags.get(names.KIND) != names.BENCHMARK:
        raise InputError(f"MLflow run {run_id} is not a benchmark run "
                         f"({names.KIND} = {run.data.tags.get(names.KIND)!r})")
    if run.info.status != "FINISHED":
        raise InputError(f"benchmark run {run_id} did not finish ({run.info.status})")
    with tempfile.TemporaryDirectory() as tmp:
        runs = pd.read_csv(client.download_artifacts(run_id, "runs.csv", tmp))
        summary = json.loads(Path(client.download_artifacts(run_id, "summary.json", tmp))
                             .read_text())
    return runs, summary
