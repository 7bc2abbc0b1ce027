"""What operations cost and how fast they react: recording, the endpoint, time to alert.

    python -m benchmarks.operations_benchmark --out out/operations

Three parts (``--parts``), all on 127.0.0.1, in a scratch data folder:

- ``recording``: what recording adds to a production solve. ``production.record_solve`` (the
  caller's share: build the record, append it to the buffer) timed ``--records`` times on a
  real solve result, on SQLite and on PostgreSQL (``--pg-url``; a scratch database is created
  and dropped); the writer's throughput (records per second reaching the store); and paired
  end-to-end ``production.solve`` calls with recording on and off, alternating, same instance
  and seed.
- ``endpoint``: `fresh-solver serve` in a subprocess over a store of ``--stored`` solves;
  ``--clients`` threads request ``/health`` and then ``/metrics`` for ``--load-s`` seconds
  each; latency quantiles, requests per second, and every request that got no HTTP answer.
- ``alert``: time from the first slow production solve to the alert at a local webhook. A
  template's version is validated (defaults vs defaults, the report's
  ``performance_baseline_s`` is the baseline), registered and promoted by override; a thread
  solves production traffic of ``--calm-jobs`` jobs; after ``--calm-s`` seconds it switches
  to ``--slow-jobs`` jobs (the induced slow-down: bigger orders than validated on); health
  rounds (the health DAG's ``checks`` + ``alerts`` tasks, `fresh_solver.operations.cycle`)
  run every ``--round-s`` seconds with a ``--window-min`` minute window. The report splits the
  latency into waiting for the window's median to cross the rule and for the next round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.measure import percentile

TEMPLATE = "ops"


def _quantiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 4),
            "p99_ms": round(percentile(ms, 0.99), 4), "max_ms": round(max(ms), 4)}


@contextmanager
def _scratch_pg(url: str):
    """A fresh PostgreSQL database on the server of ``url``; dropped after."""
    import sqlalchemy as sa

    name = f"fresh_solver_bench_{os.getpid()}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield str(sa.engine.make_url(url).set(database=name))
    finally:
        from fresh_solver.operations import store

        store.dispose_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _problem(n_jobs: int | None = None):
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.instantiate import instantiate_template

    problem = generate_family("small", 4, template_id=TEMPLATE)
    return problem if n_jobs is None else instantiate_template(problem, TEMPLATE, n_jobs)


def recording(db_url: str, records: int, pairs: int, log, mlflow_runs: int = 0
              ) -> dict[str, Any]:
    """The recording part on one store (see the module doc)."""
    from fresh_solver import production
    from fresh_solver.operations.monitor import PerformanceMonitor

    os.environ["FRESH_SOLVER_DB_URL"] = db_url
    monitor = PerformanceMonitor()
    problem = _problem()
    result = production.solve(problem, TEMPLATE, time_limit=5, seed=0)  # opens the store
    monitor.flush()
    caller = []
    start = time.perf_counter()
    for _ in range(records):
        t0 = time.perf_counter()
        production.record_solve(problem, TEMPLATE, result)
        caller.append(time.perf_counter() - t0)
    enqueued = time.perf_counter()
    flushed = monitor.flush(timeout=300)
    written_s = time.perf_counter() - start
    log(f"  {records} records: caller median {statistics.median(caller) * 1e6:.1f} us, "
        f"all in the store after {written_s:.2f} s")
    on, off = [], []
    for i in range(pairs):
        for recording_on in ((True, False) if i % 2 == 0 else (False, True)):
            os.environ["FRESH_SOLVER_MONITOR"] = "1" if recording_on else "0"
            t0 = time.perf_counter()
            production.solve(problem, TEMPLATE, time_limit=5, seed=i)
            (on if recording_on else off).append(time.perf_counter() - t0)
    os.environ["FRESH_SOLVER_MONITOR"] = "1"
    monitor.flush()
    diffs = [a - b for a, b in zip(on, off)]
    per_solve_runs = None
    if mlflow_runs:  # FRESH_SOLVER_MLFLOW_PER_SOLVE=1: one MLflow run per solve, background
        os.environ["FRESH_SOLVER_MLFLOW_PER_SOLVE"] = "1"
        production.record_solve(problem, TEMPLATE, result)  # the experiment exists after
        production.wait_for_solve_runs()
        callers = []
        runs_start = time.perf_counter()
        for _ in range(mlflow_runs):
            t0 = time.perf_counter()
            production.record_solve(problem, TEMPLATE, result)
            callers.append(time.perf_counter() - t0)
        production.wait_for_solve_runs(timeout=600)
        per_solve_runs = {"runs": mlflow_runs, "caller": _quantiles_ms(callers),
                          "background_ms_per_run": round(
                              (time.perf_counter() - runs_start) / mlflow_runs * 1000, 2),
                          "tracking_uri": "embedded SQLite"}
        os.environ.pop("FRESH_SOLVER_MLFLOW_PER_SOLVE")
        log(f"  per-solve MLflow runs: {per_solve_runs}")
    return {"per_solve_mlflow_runs": per_solve_runs, "caller": _quantiles_ms(caller),
            "flushed": flushed,
            "writer_records_per_s": round(records / written_s, 1),
            "enqueue_s": round(enqueued - start, 4),
            "end_to_end": {"pairs": pairs, "solve_with_recording": _quantiles_ms(on),
                           "solve_without": _quantiles_ms(off),
                           "median_paired_difference_ms": round(
                               statistics.median(diffs) * 1000, 4)}}


def _fill_store(stored: int) -> None:
    from fresh_solver.operations.monitor import PerformanceMonitor, SolveRecord

    monitor = PerformanceMonitor()
    now = time.time()
    for i in range(stored):
        monitor.record(SolveRecord(f"t{i % 3}", "OPTIMAL" if i % 50 else "UNKNOWN",
                                   0.05 + (i % 97) / 100, jobs=5, tasks=20, version=str(i % 2),
                                   at=now - (stored - i) * 0.5))
    monitor.flush(timeout=300)


def _load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    response.read()
                    code = response.status
            except urllib.error.HTTPError as exc:  # 503 is an answer too
                exc.read()
                code = exc.code
            except OSError as exc:
                with lock:
                    failures.append(type(exc).__name__)
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**_quantiles_ms(latencies), "requests_per_s": round(len(latencies) / seconds, 1),
            "codes": codes, "no_answer": len(failures)}


def endpoint(stored: int, clients: int, load_s: float, log) -> dict[str, Any]:
    """The endpoint part (see the module doc)."""
    from fresh_solver import devstack

    _fill_store(stored)
    port = devstack.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fresh_solver.cli", "serve", "--port",
                             str(port), "--interval", "10"], start_new_session=True,
                            stderr=subprocess.DEVNULL, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first check round has reported
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    body = json.loads(r.read())
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read())
            except OSError:
                body = {}
            if body.get("checks"):
                break
            time.sleep(0.5)
        results = {}
        for path in ("/health", "/metrics"):
            results[path] = _load(base + path, clients, load_s)
            log(f"  {path}: {results[path]}")
        return {"stored_solves": stored, "clients": clients, "load_s": load_s, **results}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def alert_latency(args, log) -> dict[str, Any]:
    """The alert part (see the module doc)."""
    from benchmarks.faults import webhook_receiver
    from fresh_solver import production
    from fresh_solver.model.problem import problem_to_dict
    from fresh_solver.operations import cycle
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry
    from fresh_solver.validation.validator import validate

    folder = Path(os.environ["FRESH_SOLVER_HOME"]) / "held_out"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    calm, drifted = _problem(args.calm_jobs), _problem(args.slow_jobs)
    for i, n in enumerate((args.calm_jobs,) * 3):
        path = folder / f"held_out_{i}.json"
        path.write_text(json.dumps(problem_to_dict(_problem(n))))
        paths.append(str(path))
    report = validate(TEMPLATE, SolverConfig(), tuple(paths), [0, 1, 2], 5.0)
    registry = ParameterRegistry()
    version = registry.register(TEMPLATE, SolverConfig(), report.to_dict())
    registry.promote(TEMPLATE, version, approved_by="operations-benchmark",
                     override_validation=not report.passed)
    log(f"  baseline: v{version}, performance_baseline_s {report.performance_baseline_s:.4f}")
    with webhook_receiver() as receiver:
        url, arrivals = receiver.url + "/hook", receiver.received
        config = Path(os.environ["FRESH_SOLVER_HOME"]) / "ops.toml"
        config.write_text(f'[monitor]\nwindow_minutes = {args.window_min}\n\n'
                          f'[channels.hook]\ntype = "webhook"\nurl = "{url}"\n\n'
                          '[[rules]]\nname = "performance_degradation"\n'
                          'condition = "performance_change > 0.5"\nseverity = "critical"\n'
                          'cooldown_minutes = 0\n')
        os.environ["FRESH_SOLVER_CONFIG"] = str(config)
        stop = threading.Event()
        first_slow: list[float] = []
        solves: list[tuple[float, float, bool]] = []
        switch_at = time.time() + args.calm_s

        def traffic() -> None:
            seed = 0
            while not stop.is_set():
                slow = time.time() >= switch_at
                result = production.solve(drifted if slow else calm, TEMPLATE,
                                          time_limit=10, seed=seed)
                seed += 1
                solves.append((time.time(), result.wall_time_s, slow))
                if slow and not first_slow:
                    first_slow.append(time.time())

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        rounds = []
        deadline = time.time() + args.calm_s + args.max_wait_s
        while not arrivals and time.time() < deadline:
            t0 = time.time()
            outcome = cycle.alert(cycle.check())  # the DAG's checks and alerts tasks
            rounds.append({"at": t0, "duration_s": round(time.time() - t0, 3),
                           "transitions": outcome["transitions"]})
            time.sleep(max(0.0, args.round_s - (time.time() - t0)))
        stop.set()
        worker.join(timeout=60)
    calm_times = [s[1] for s in solves if not s[2]]
    if not arrivals or not first_slow or arrivals[0][0] < first_slow[0]:
        return {"alerted": bool(arrivals), "rounds": rounds, "solves": len(solves),
                "false_alarm": arrivals[0][1] if arrivals else None,
                "calm_median_solve_s": statistics.median(calm_times) if calm_times else None,
                "baseline_s": report.performance_baseline_s}
    alert_at, body = arrivals[0]
    slow_before = [s for s in solves if s[2] and s[0] <= alert_at]
    firing_round = next(r for r in rounds if r["transitions"])
    return {"alerted": True, "alert": body["name"],
            "latency_s": round(alert_at - first_slow[0], 2),
            "median_crossed_after_slow_solves": len(slow_before),
            "firing_round_started_after_first_slow_s": round(firing_round["at"]
                                                             - first_slow[0], 2),
            "round_duration_s": statistics.median(r["duration_s"] for r in rounds),
            "round_every_s": args.round_s, "window_minutes": args.window_min,
            "calm_median_solve_s": round(statistics.median(calm_times), 4),
            "slow_median_solve_s": round(statistics.median(s[1] for s in slow_before), 4),
            "baseline_s": report.performance_baseline_s, "calm_jobs": args.calm_jobs,
            "slow_jobs": args.slow_jobs,
            "performance_change_in_alert": body["details"].get("performance_change")}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts and write results.json / report.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/operations")
    parser.add_argument("--parts", default="recording,endpoint,alert")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--mlflow-runs", type=int, default=100)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--stored", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--load-s", type=float, default=30.0)
    parser.add_argument("--calm-s", type=float, default=40.0)
    parser.add_argument("--calm-jobs", type=int, default=5)
    parser.add_argument("--slow-jobs", type=int, default=6)
    parser.add_argument("--round-s", type=float, default=15.0)
    parser.add_argument("--window-min", type=float, default=1.0)
    parser.add_argument("--max-wait-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from fresh_solver.fingerprint import machine_fingerprint

    data: dict[str, Any] = {"command": rerun_command(
        "benchmarks.operations_benchmark", argv),
        "machine": machine_fingerprint(), "args": vars(args)}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        os.environ["FRESH_SOLVER_HOME"] = scratch
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if "recording" in parts:
            log("recording: SQLite")
            data["recording_sqlite"] = recording(
                f"sqlite:///{scratch}/operations.db", args.records, args.pairs, log,
                mlflow_runs=args.mlflow_runs)
            log("recording: PostgreSQL")
            with _scratch_pg(args.pg_url) as url:
                data["recording_postgresql"] = recording(url, args.records, args.pairs, log)
            os.environ.pop("FRESH_SOLVER_DB_URL", None)
        if "endpoint" in parts:
            log("endpoint")
            data["endpoint"] = endpoint(args.stored, args.clients, args.load_s, log)
        if "alert" in parts:
            log("alert latency")
            data["alert"] = alert_latency(args, log)
    write_results(out, data, _report(data))
    return 0


def _report(data: dict[str, Any]) -> str:
    lines = ["# Operations benchmark", "", f"`{data['command']}`", "",
             f"Machine: {data['machine']}", ""]
    for key in ("recording_sqlite", "recording_postgresql"):
        if key in data:
            r = data[key]
            e = r["end_to_end"]
            lines += [f"## {key.replace('_', ' on ')}", "",
                      f"- caller's cost per record: median {r['caller']['median_ms']} ms, "
                      f"p99 {r['caller']['p99_ms']} ms (n = {r['caller']['n']})",
                      f"- writer: {r['writer_records_per_s']} records/s into the store",
                      f"- production.solve, recording on vs off, {e['pairs']} alternating "
                      f"pairs: median {e['solve_with_recording']['median_ms']} ms vs "
                      f"{e['solve_without']['median_ms']} ms, median paired difference "
                      f"{e['median_paired_difference_ms']} ms"]
            m = r.get("per_solve_mlflow_runs")
            if m:
                lines.append(f"- per-solve MLflow runs (switched on): caller median "
                             f"{m['caller']['median_ms']} ms, {m['background_ms_per_run']} ms "
                             f"of background work per run ({m['runs']} runs, "
                             f"{m['tracking_uri']})")
            lines.append("")
    if "endpoint" in data:
        e = data["endpoint"]
        lines += ["## Endpoint under load", "",
                  f"{e['clients']} client threads, {e['load_s']} s per path, "
                  f"{e['stored_solves']} stored solves.", "",
                  "| path | requests/s | median ms | p99 ms | max ms | codes | no answer |",
                  "|---|---|---|---|---|---|---|"]
        for path in ("/health", "/metrics"):
            r = e[path]
            lines.append(f"| {path} | {r['requests_per_s']} | {r['median_ms']} | "
                         f"{r['p99_ms']} | {r['max_ms']} | {r['codes']} | {r['no_answer']} |")
        lines.append("")
    if "alert" in data:
        lines += ["## Time to alert", "", "```", json.dumps(data["alert"], indent=1), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
