"""What the source document's workflow costs, and how fast it alerts (issue 12's figures).

    python -m benchmarks.facade_benchmark --out facade.json [--solves 20]

In a fresh ``FRESH_SOLVER_HOME`` (a temporary folder unless one is set), with an embedded
SQLite MLflow store and operations store, on one generated small problem:

1. **Overhead**: ``production_solve_workflow`` against a plain ``production.solve`` on the same
   problem, seeds 0..n-1 interleaved (paired), 1 CP-SAT worker, a promoted Production set and a
   stored single-number baseline (so the regression check runs on every call). The first
   call of each is discarded (one-time imports, the health gate's first round). Reported:
   median and p90 of (workflow - plain) wall time per call, and the median of each.
2. **Time to alert**: a local webhook receiver, a baseline far below any solve (an induced
   regression, as a deliberately slow Production set would cause); the time from the
   workflow call's start to the alert's arrival at the receiver, on the in-line path (the
   workflow's own regression check and ``create_performance_alert``), over ``--alerts``
   calls, each with a fresh alert (resolved in between, so deduplication does not hold it).

Machine-dependent: run it on an otherwise idle machine; ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _receiver() -> tuple[ThreadingHTTPServer, list[float]]:
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.perf_counter())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def measure(solves: int, alerts: int) -> dict:
    """Both figures (module docstring), in the current FRESH_SOLVER_HOME."""
    from fresh_solver import production, tracking
    from fresh_solver.model.generate import generate_family
    from fresh_solver.operations import store
    from fresh_solver.performance.regression import RegressionDetector
    from fresh_solver.templates import ParameterManager
    from fresh_solver.validation.compare import PassRule
    from fresh_solver.workflow import production_solve_workflow

    template_id = "facade"
    server, arrivals = _receiver()
    config = tracking.home() / "operations.toml"
    config.write_text(f'[channels.hook]\ntype = "webhook"\n'
                      f'url = "http://127.0.0.1:{server.server_address[1]}/"\n')
    os.environ["FRESH_SOLVER_CONFIG"] = str(config)
    problem = generate_family("small", 10, 1000, template_id=template_id)
    manager = ParameterManager()
    # Lenient rule: the point is a served set, not whether it is faster.
    result = manager.validate_parameters(template_id, {"num_workers": 1}, rule=PassRule(
        min_speedup=0.01, max_p_value=1.0, min_speedup_vs_production=0.01,
        quality_tolerance=1.0))
    manager.promote_parameters(template_id, result, approved_by="facade-benchmark")
    production.clear_cache()
    detector = RegressionDetector()
    detector.establish_baseline(template_id, baseline_time=60.0)  # never a regression
    plain, workflow = [], []
    for seed in range(solves + 1):
        t0 = time.perf_counter()
        production.solve(problem, template_id, seed=seed)
        t1 = time.perf_counter()
        production_solve_workflow(template_id, problem, seed=seed)
        t2 = time.perf_counter()
        if seed:  # the first pair pays one-time costs
            plain.append(t1 - t0)
            workflow.append(t2 - t1)
    overhead = sorted(w - p for w, p in zip(workflow, plain))
    detector.establish_baseline(template_id, baseline_time=1e-4)  # induced regression
    to_alert = []
    for seed in range(alerts):
        with store.engine(store.db_url()).begin() as conn:  # a new episode each time
            conn.execute(store.alerts.delete())
        seen, start = len(arrivals), time.perf_counter()
        production_solve_workflow(template_id, problem, seed=seed)
        deadline = time.monotonic() + 60
        while len(arrivals) == seen and time.monotonic() < deadline:
            time.sleep(0.001)
        if len(arrivals) > seen:
            to_alert.append(arrivals[seen] - start)
    server.shutdown()
    return {"solves": solves, "num_workers": 1, "problem": problem.name,
            "plain_median_s": statistics.median(plain),
            "workflow_median_s": statistics.median(workflow),
            "overhead_median_s": statistics.median(overhead),
            "overhead_p90_s": overhead[int(0.9 * (len(overhead) - 1))],
            "alerts": alerts, "alerts_received": len(to_alert),
            "time_to_alert_median_s": statistics.median(to_alert) if to_alert else None,
            "time_to_alert_max_s": max(to_alert) if to_alert else None}


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=5)
    args = parser.parse_args(argv)
    if args.solves < 1 or args.alerts < 1:
        print("--solves and --alerts must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("FRESH_SOLVER_HOME", home)
        figures = measure(args.solves, args.alerts)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
