"""How long a reviewer waits for `fresh-solver registry ...` against a tracking server.

    python -m benchmarks.reviewer_commands --out out/reviewer_commands

Starts an MLflow server as `make up` does (``mlflow_config/start_server.sh`` on 127.0.0.1 and
a free port, its data in ``<out>/home``), registers ``--versions`` versions of one template
with validation evidence (fabricated verdict runs: validation has its own tests) and promotes
the first. Then each reviewer command — ``registry list``, ``show``, ``history`` and
``promote`` (alternating between two versions) — runs as a user types it, a new process each
time, ``--repeats`` times with each registry client: the REST client the commands use against
a server, and MLflow's own (``FRESH_SOLVER_REGISTRY_CLIENT=mlflow``, what they used before),
the two interleaved so a drift in the machine's speed falls on both. Wall seconds from
process start to exit: median, min and max per command and client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.record import rerun_command, write_results

CLIENTS = ("rest", "mlflow")
TEMPLATE = "review"


def _registered(versions: int) -> list[str]:
    """``versions`` validated versions of :data:`TEMPLATE`, the first promoted."""
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry, _parameters_run

    registry = ParameterRegistry()
    made = []
    for i in range(versions):
        config = SolverConfig.from_dict({"cp_sat": {"num_workers": 1,
                                                    "max_presolve_iterations": i + 1}})
        run_id = _parameters_run(registry.client, TEMPLATE, config, "passed")
        report = {"template_id": TEMPLATE, "passed": True, "candidate_hash": config.hash,
                  "run_id": run_id, "speedup_factor": 1.5, "performance_baseline_s": 0.1,
                  "validated_at": "2026-12-07T00:00:00Z", "instance_set": "benchmark",
                  "summary": "fabricated for the reviewer-commands benchmark"}
        made.append(registry.register(TEMPLATE, config, report))
    registry.promote(TEMPLATE, made[0], "benchmark")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.versions < 2 or args.repeats < 1:
        parser.error("--versions must be >= 2 (promote alternates two) and --repeats >= 1")
    from fresh_solver import devstack
    from fresh_solver.fingerprint import machine_fingerprint

    args.out.mkdir(parents=True, exist_ok=True)
    home = (args.out / "home").resolve()
    service = devstack.start_mlflow(home, devstack.free_port())
    try:
        os.environ |= {"MLFLOW_TRACKING_URI": service.url,
                       "FRESH_SOLVER_HOME": str(home / "client")}
        versions = _registered(args.versions)
        cli = str(Path(sys.executable).parent / "fresh-solver")
        commands = {"list": ["registry", "list", "--json"],
                    "show": ["registry", "show", TEMPLATE, "--json"],
                    "history": ["registry", "history", TEMPLATE, "--json"]}
        seconds: dict[str, dict[str, list[float]]] = {}
        for repeat in range(args.repeats):
            for k, client in enumerate(CLIENTS[repeat % 2:] + CLIENTS[:repeat % 2]):
                # each promote moves Production to the other of the first two versions
                target = versions[(2 * repeat + k + 1) % 2]
                runs = commands | {"promote": ["registry", "promote", TEMPLATE, target,
                                               "--approved-by", "benchmark"]}
                for name, command in runs.items():
                    env = os.environ | {"FRESH_SOLVER_REGISTRY_CLIENT": client}
                    start = time.perf_counter()
                    done = subprocess.run([cli, *command], env=env, capture_output=True,
                                          text=True, timeout=300)
                    elapsed = time.perf_counter() - start
                    if done.returncode != 0:
                        raise SystemExit(f"{' '.join(command)} ({client}) failed: "
                                         f"{done.stderr.strip()}")
                    seconds.setdefault(name, {}).setdefault(client, []).append(elapsed)
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    finally:
        devstack.stop(service)
    rows = {name: {client: {"median": statistics.median(values), "min": min(values),
                            "max": max(values), "runs": values}
                   for client, values in by_client.items()}
            for name, by_client in seconds.items()}
    data = {"command": rerun_command(__spec__.name, argv), "machine": machine_fingerprint(),
            "versions": args.versions, "repeats": args.repeats, "seconds": rows}
    lines = ["| command | REST client: median (min-max) | MLflow's client: median (min-max) |",
             "|---|---|---|"]
    for name, by_client in rows.items():
        cells = [f"{by_client[c]['median']:.2f} s ({by_client[c]['min']:.2f}-"
                 f"{by_client[c]['max']:.2f})" for c in CLIENTS]
        lines.append(f"| registry {name} | {cells[0]} | {cells[1]} |")
    lines.append(f"\n{args.versions} versions, {args.repeats} runs per command and client, "
                 "each a new process, wall seconds from start to exit.")
    write_results(args.out, data, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
