"""The production roll-up in MLflow: per template and interval, one run in
``fresh-solver/production`` summarising the stored solves (not one run per solve: MLflow is
a record of decisions and summaries, the operations store holds the raw solves)."""

from __future__ import annotations

import statistics
from typing import Any

from fresh_solver.measure import percentile
from fresh_solver.operations.monitor import ANSWERED, PerformanceMonitor
from fresh_solver.tracking import names

EXPERIMENT = "fresh-solver/production"


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Counts, error rate and solve-time quantiles of one template's solves."""
    times = sorted(r["solve_time_s"] for r in rows)
    errors = sum(r["status"] not in ANSWERED for r in rows)
    return {"solves": len(rows), "errors": errors, "error_rate": errors / len(rows),
            "fallbacks": sum(bool(r["fallback"]) for r in rows),
            "solve_time_p50_s": statistics.median(times),
            "solve_time_p95_s": percentile(times, 0.95),
            "solve_time_p99_s": percentile(times, 0.99), "solve_time_max_s": times[-1],
            "jobs_max": max((r["jobs"] or 0) for r in rows)}


def write_rollups(monitor: PerformanceMonitor, start: float, end: float
                  ) -> list[dict[str, Any]]:
    """Write (or find) the roll-up run of every template with solves in [start, end)."""
    from mlflow.entities import Metric, Param, RunTag

    from fresh_solver import tracking

    rows = [r for r in monitor.solves(start) if r["at"] < end]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["template_id"], []).append(row)
    if not grouped:
        return []
    client = tracking.client()
    experiment = tracking.experiment_id(client, EXPERIMENT)
    written = []
    for template_id, group in sorted(grouped.items()):
        key = f"{template_id}@{int(start)}-{int(end)}"
        found = client.search_runs([experiment], names.runs_where({names.ROLLUP_KEY: key}),
                                   max_results=1)
        if found:
            written.append({"template_id": template_id, "run_id": found[0].info.run_id,
                            "new": False})
            continue
        run = client.create_run(experiment, tags={
            "mlflow.runName": f"production-{template_id}-{int(start)}", names.ROLLUP_KEY: key,
            "template_id": template_id})
        summary = summarise(group)
        versions = sorted({r["version"] or "none" for r in group})
        now_ms = int(end * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), now_ms, 0) for k, v in summary.items()],
            params=[Param("template_id", template_id), Param("interval_start", str(int(start))),
                    Param("interval_end", str(int(end)))],
            tags=[RunTag("versions_served", ",".join(versions)),
                  RunTag("params_sources", ",".join(sorted({r["params_source"][:100]
                                                             for r in group})))])
        client.set_terminated(run.info.run_id, "FINISHED")
        written.append({"template_id": template_id, "run_id": run.info.run_id, "new": True,
                        **summary})
    return written


def log_solve_run(record) -> str:
    """One MLflow run for one production solve (only with ``FRESH_SOLVER_MLFLOW_PER_SOLVE=1``:
    the operations store already holds every solve; this is for teams that want them in the
    MLflow UI, at the cost measured by the operations benchmark)."""
    from mlflow.entities import Metric, Param

    from fresh_solver import tracking

    client = tracking.client()
    experiment = tracking.experiment_id(client, EXPERIMENT)
    run = client.create_run(experiment, tags={
        "mlflow.runName": f"solve-{record.template_id}", "template_id": record.template_id,
        names.KIND: names.PRODUCTION_SOLVE})
    at_ms = int(record.at * 1000)
    metrics = {"solve_time_s": record.solve_time_s, "build_time_s": record.build_time_s,
               "objective": record.objective, "best_bound": record.best_bound,
               "peak_rss_mb": record.peak_rss_mb}
    client.log_batch(run.info.run_id,
                     metrics=[Metric(k, float(v), at_ms, 0) for k, v in metrics.items()
                              if v is not None],
                     params=[Param(k, str(getattr(record, k))) for k in (
                         "status", "params_source", "version", "jobs", "tasks", "host")])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
