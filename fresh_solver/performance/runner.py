"""The benchmark runner: every configuration on the same instances, seeds and order (paired).

    from fresh_solver.performance.definitions import TemplateBenchmark
    from fresh_solver.performance.runner import BenchmarkRunner

    suite = BenchmarkRunner().run_template_benchmark(TemplateBenchmark(
        template_id="part", template_file="part.json", instance_counts=(1, 3, 5, 10),
        time_limit_seconds=60, repetitions=3))
    print(f"Average speedup: {suite.average_speedup:.1f}x")   # suite.runs: one row per run

Order: for each instance, seed and repetition, the reference (the first configuration) runs
first with the full cap and sets the target (DESIGN §8: its proven optimum, or its best
objective at the cap); then every other configuration runs on the same pair, stopping early
once it reaches an unproven target. One solve at a time (a solve uses the cores; two at once
would time each other). A discarded warm-up solve comes first: the first CP-SAT call of a
process pays one-time costs.

Time to target (``time_to_target_s``): :func:`fresh_solver.measure.time_to_target`, PAR2 (2 x
the cap) when not reached. When the reference found no solution at all, the target is "any
solution": time to first solution, PAR2 if none. ``time_to_optimum_s`` is the wall time of a
run that proved optimality, empty otherwise.

Peak RSS (``peak_rss_mb``): the resident set size of this whole process while the solve ran,
sampled every 10 ms by a thread with psutil (CP-SAT releases the GIL while it searches), and
raised to ``ru_maxrss`` when the process's lifetime peak grew during the solve (a peak between
two samples). It is absolute, so it includes what the process held before: compare it between
configurations of one benchmark, not across processes.

Each run is a row of :data:`COLUMNS`; the suite writes ``runs.csv``, ``summary.json``,
``report.md`` and the plots to its output folder and is one MLflow run in
``fresh-solver/benchmarks`` (:mod:`fresh_solver.performance.mlflow_run`).
"""

from __future__ import annotations

import csv
import json
import math
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fresh_solver.performance.definitions import (
    Configuration,
    TemplateBenchmark,
    load_instances,
    resolve_configurations,
)

COLUMNS = ("configuration", "instance", "jobs", "tasks", "seed", "repetition", "status",
           "objective", "best_bound", "wall_time_s", "time_to_first_s", "time_to_target_s",
           "time_to_optimum_s", "num_workers", "build_time_s", "peak_rss_mb", "params_source",
           "ortools_version", "fingerprint")
RSS_SAMPLE_S = 0.01
PARTIAL_RUNS = "runs.partial.csv"  # every row as it is measured; runs.csv when complete


@contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Peak RSS of the process (MiB) over the block, in the one-element list it yields (set on
    exit); see the module docstring for how it is measured."""
    import psutil

    process = psutil.Process()
    peak = [process.memory_info().rss]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_SAMPLE_S):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, name="fresh-solver-rss", daemon=True)
    sampler.start()
    out = [0.0]
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak[0] = max(peak[0], process.memory_info().rss)
        if after > before:
            peak[0] = max(peak[0], after * 1024)
        out[0] = peak[0] / 2**20


@dataclass
class BenchmarkSuite:
    """A finished benchmark: its runs (a DataFrame of :data:`COLUMNS`), the summary, where
    its files are and its MLflow run."""

    definition: TemplateBenchmark
    runs: Any  # pandas.DataFrame
    summary: dict[str, Any]
    out: Path
    run_id: str

    @property
    def average_speedup(self) -> float | None:
        """The source document's figure: the geometric-mean speedup in time to target of the
        last configuration against the reference (the first); with the default
        configurations, the template model against the baseline model."""
        return self.summary["average_speedup"]


def default_out() -> Path:
    """A new folder under ``FRESH_SOLVER_HOME/benchmarks`` named by the start time."""
    from fresh_solver import tracking

    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{i}" for i in range(1, 100))):
        out = tracking.home() / "benchmarks" / f"{stamp}{suffix}"
        try:
            out.mkdir(parents=True)
            return out
        except FileExistsError:
            continue
    raise RuntimeError(f"no free benchmark folder for {stamp} under {out.parent}")


def _time_to_target(result, target, cap: float) -> float:
    from fresh_solver.measure import time_to_target

    if target is None:  # the reference found nothing: any solution reaches the target
        first = result.time_to_first_s
        return first if first is not None and first <= cap else 2 * cap
    return time_to_target(result, target)


def _row(configuration: Configuration, instance: str, problem, seed: int, repetition: int,
         result, ttt: float, rss_mb: float, context: dict[str, str]) -> dict[str, Any]:
    if result.valid is False:
        raise AssertionError(f"{configuration.name} on {instance} seed {seed}: invalid "
                             f"schedule: {result.violations[:3]}")
    return {"configuration": configuration.name, "instance": instance,
            "jobs": len(problem.jobs), "tasks": problem.num_tasks, "seed": seed,
            "repetition": repetition, "status": result.status, "objective": result.objective,
            "best_bound": result.best_bound, "wall_time_s": result.wall_time_s,
            "time_to_first_s": result.time_to_first_s, "time_to_target_s": ttt,
            "time_to_optimum_s": result.wall_time_s if result.optimal else None,
            "num_workers": result.num_workers, "build_time_s": result.build_time_s,
            "peak_rss_mb": rss_mb, "params_source": configuration.params_source, **context}


def _solve(configuration: Configuration, problem, seed: int, cap: float,
           stop_at: int | None):
    from fresh_solver.solver import solve

    with peak_rss() as rss:
        result = solve(problem, model=configuration.model, options=configuration.config.model,
                       params=configuration.config.cp_sat, time_limit=cap, seed=seed,
                       stop_at=stop_at, params_source=configuration.params_source)
    return result, rss[0]


def run_pairs(instances: dict[str, Any], configurations: list[Configuration],
              seeds: tuple[int, ...] | list[int], repetitions: int, cap: float,
              context: dict[str, str], progress=None, on_row=None) -> list[dict[str, Any]]:
    """Every run, as rows of :data:`COLUMNS` in run order: for each instance, seed and
    repetition, the reference (``configurations[0]``) and then the others (module
    docstring). ``context`` gives the ``ortools_version`` and ``fingerprint`` columns;
    ``progress(configuration, instance)`` is called after each run and ``on_row(row)`` with
    its row (so an interrupted benchmark keeps what it measured). Presets that measure
    other things than :func:`run_benchmark` (``core_benchmark``) call this directly."""
    from fresh_solver.measure import target_of

    reference, others = configurations[0], configurations[1:]
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row:
            on_row(row)
    for name, problem in instances.items():
        for seed in seeds:
            for repetition in range(repetitions):
                result, rss = _solve(reference, problem, seed, cap, None)
                target = target_of(result, cap)
                add(_row(reference, name, problem, seed, repetition, result,
                         _time_to_target(result, target, cap), rss, context))
                if progress:
                    progress(reference.name, name)
                stop_at = target.objective if target and not target.proven else None
                for configuration in others:
                    result, rss = _solve(configuration, problem, seed, cap, stop_at)
                    add(_row(configuration, name, problem, seed, repetition, result,
                             _time_to_target(result, target, cap), rss, context))
                    if progress:
                        progress(configuration.name, name)
    return rows


def _progress_bar(total: int, enabled: bool):
    """A rich progress bar on stderr, and the callback that advances it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("benchmark {task.fields[last]:<40}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), disable=not enabled)
    task = bar.add_task("runs", total=total, last="")

    def advance(configuration: str, instance: str) -> None:
        bar.update(task, advance=1, last=f"{configuration} / {instance}"[:40])

    return bar, advance


class BenchmarkRunner:
    """The source document's runner; :meth:`run_template_benchmark` runs one definition."""

    def __init__(self, *, progress: bool = True):
        self.progress = progress

    def run_template_benchmark(self, definition: TemplateBenchmark,
                               out: Path | None = None) -> BenchmarkSuite:
        """Check the definition, run it paired, write its files and its MLflow run. Bad input
        raises :class:`InputError` before any solve or MLflow run."""
        return run_benchmark(definition, out=out, progress=self.progress)


def run_benchmark(definition: TemplateBenchmark, *, out: Path | None = None,
                  progress: bool = True) -> BenchmarkSuite:
    """See :class:`BenchmarkRunner`; ``out`` defaults to :func:`default_out`."""
    import ortools
    import pandas as pd

    from fresh_solver.fingerprint import fingerprint_id, machine_fingerprint
    from fresh_solver.performance import mlflow_run, plots
    from fresh_solver.performance.summary import report_markdown, summarise

    definition.check()
    instances = load_instances(definition)
    configurations = resolve_configurations(definition, instances)
    out = Path(out) if out is not None else default_out()
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_fingerprint()
    context = {"ortools_version": ortools.__version__, "fingerprint": fingerprint_id(machine)}
    record = mlflow_run.start(definition, instances, configurations, machine,
                              context["fingerprint"])
    for c in configurations:
        print(f"{c.name}: {c.model} model, parameters {c.params_source}"
              + (" (reference: sets the targets)" if c is configurations[0] else ""),
              file=sys.stderr)
    total = len(instances) * len(definition.seeds) * definition.repetitions * len(
        configurations)
    partial = out / PARTIAL_RUNS
    partial.unlink(missing_ok=True)  # a reused --out must not show an earlier run's rows
    try:
        bar, advance = _progress_bar(total, progress)
        cap = float(definition.time_limit_seconds)
        first = next(iter(instances.values()))
        _solve(configurations[0], first, definition.seeds[0], min(1.0, cap), None)  # warm-up
        with bar, partial.open("w", newline="") as sink:
            writer = csv.DictWriter(sink, fieldnames=list(COLUMNS))
            writer.writeheader()

            def keep(row: dict[str, Any]) -> None:
                writer.writerow(row)
                sink.flush()

            rows = run_pairs(instances, configurations, definition.seeds,
                             definition.repetitions, cap, context, advance, keep)
        runs = pd.DataFrame(rows, columns=list(COLUMNS))
        summary = _jsonable(summarise(runs, definition, configurations, machine, context)
                            | {"out": str(out)})
        runs.to_csv(out / "runs.csv", index=False)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        (out / "report.md").write_text(report_markdown(summary))
        plot_files = plots.write_plots(runs, summary, out)
        record.finish(summary, [out / "runs.csv", out / "summary.json", out / "report.md",
                                *plot_files])
        partial.unlink()
    except BaseException as exc:  # the run must not stay RUNNING; the error goes on
        record.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if partial.exists():
            print(f"the runs measured so far are in {partial}", file=sys.stderr)
        raise
    return BenchmarkSuite(definition, runs, summary, out, record.run_id)


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null: ``summary.json`` stays strict JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
