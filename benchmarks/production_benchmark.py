"""What the production path costs: parameter resolution and the overhead of a production solve.

    python -m benchmarks.production_benchmark --out out/production_benchmark

In a scratch SQLite registry (its own FRESH_SOLVER_HOME) a parameter set is registered and
promoted. Measured, after `import mlflow` (paid once per process, not per solve):
- cold resolution: `get_solver_config` with the cache cleared (registry query, artifact
  download, validation), median of ``--cold`` repetitions;
- cached: `get_solver_parameters` with a warm cache, per call, over ``--cached`` calls;
- overhead: `production.solve` vs the plain `solve` with the same parameters on a problem
  that needs longer than the time limit (so both run the full ``--solve-limit``), paired and
  alternated, ``--reps`` pairs; overhead = production / raw wall time - 1, median and range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import rerun_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--cached", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--solve-limit", type=float, default=1.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["FRESH_SOLVER_HOME"] = tempfile.mkdtemp(prefix="fresh-solver-prodbench-")
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    import mlflow  # noqa: F401 - the one-time import is not part of any figure

    from fresh_solver import production
    from fresh_solver.fingerprint import machine_fingerprint
    from fresh_solver.model.generate import generate_family
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry
    from fresh_solver.solver import solve

    config = SolverConfig.from_dict({"cp_sat": {"num_workers": 2}})
    registry = ParameterRegistry()
    version = registry.register("part", config)
    registry.promote("part", version, "benchmark", override_validation=True)

    cold = []
    for _ in range(args.cold):
        production.clear_cache()
        t0 = time.perf_counter()
        resolved = production.get_solver_config("part")
        cold.append(time.perf_counter() - t0)
    assert resolved.source.startswith("registry:"), resolved.source

    t0 = time.perf_counter()
    for _ in range(args.cached):
        production.get_solver_parameters("part")
    cached = (time.perf_counter() - t0) / args.cached

    problem = generate_family("large", 1)  # not solved to optimality within a second
    overheads = []
    for rep in range(args.reps):
        runs = {}
        for kind in (("raw", "production") if rep % 2 == 0 else ("production", "raw")):
            t0 = time.perf_counter()
            if kind == "raw":
                solve(problem, options=config.model, params=config.cp_sat,
                      time_limit=args.solve_limit, seed=rep)
            else:
                production.solve(problem, "part", time_limit=args.solve_limit, seed=rep)
            runs[kind] = time.perf_counter() - t0
        overheads.append(runs["production"] / runs["raw"] - 1)

    result = {
        "command": rerun_command(__spec__.name, argv),
        "machine": machine_fingerprint(), "num_workers": 2,
        "cold_resolution_ms": {"median": statistics.median(cold) * 1000,
                               "min": min(cold) * 1000, "max": max(cold) * 1000,
                               "n": len(cold)},
        "cached_call_us": cached * 1e6,
        "solve_overhead": {"median": statistics.median(overheads), "min": min(overheads),
                           "max": max(overheads), "n": len(overheads),
                           "time_limit_s": args.solve_limit, "problem": problem.name},
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
