"""What a sick registry costs a production solve: fault x {solves, succeeded, latency}.

    python -m benchmarks.registry_faults --out out/registry_faults

A real MLflow server (started as `make up` starts it, in a scratch folder) serves a promoted
parameter set; the client has resolved it once, so its disk copy exists. Then, for each fault
— none, hung (SIGSTOP), dead, 500s, malformed JSON, slow (a proxy delaying every request by
``--delay`` s) — a new process's view (empty memory cache) is simulated: the first resolution
is timed, then ``--threads`` request threads run ``--solves`` production solves each, with a
parameter TTL of 0.05 s so that every solve meets the fault. Added latency is the time a
solve spends getting its parameters (`production.get_solver_config`), the part the registry
can make slow; the solve itself is not counted. Loopback only.

Then the one-shot command a script runs, ``fresh-solver solve FILE --production part --json``,
``--cli-runs`` times against a healthy, a hung and a dead registry: when its result is
printed, and when the process exits (a script waits for the exit). A new process each time,
with the disk copy of the last good set.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from benchmarks.record import rerun_command, write_results
from fresh_solver.measure import percentile

FAULTS = ("none", "hung", "dead", "500s", "malformed", "slow")
ONE_SHOT_FAULTS = ("none", "hung", "dead")
TEMPLATE = "part"


@contextmanager
def injected(fault: str, service, delay: float):
    """The tracking URI that shows ``fault`` while the block runs."""
    from benchmarks import faults
    from fresh_solver import devstack

    if fault == "none":
        yield service.url
    elif fault == "hung":
        devstack.send_signal(service, signal.SIGSTOP)
        try:
            yield service.url
        finally:
            devstack.send_signal(service, signal.SIGCONT)
    elif fault == "dead":
        yield f"http://127.0.0.1:{devstack.free_port()}"
    else:
        make = {"500s": lambda: faults.error_server(500), "malformed": faults.malformed_server,
                "slow": lambda: faults.delaying_proxy(service.url, delay)}[fault]
        with make() as server:
            yield server.url


def measure(fault: str, service, problem, threads: int, solves: int, delay: float) -> dict:
    """One fault: the first resolution, then the request threads' solves."""
    from fresh_solver import production

    def one_solve(_: int) -> tuple[float, bool, str]:
        started = time.perf_counter()
        production.get_solver_config(TEMPLATE)
        added = time.perf_counter() - started
        result = production.solve(problem, template_id=TEMPLATE, time_limit=0.05)
        return added, result.solved and result.valid is True, result.params_source

    with injected(fault, service, delay) as url:
        os.environ["MLFLOW_TRACKING_URI"] = url
        production.clear_cache()
        started = time.perf_counter()
        first = production.get_solver_config(TEMPLATE)
        first_s = time.perf_counter() - started
        with ThreadPoolExecutor(threads) as pool:
            runs = list(pool.map(one_solve, range(threads * solves)))
        production.wait_for_refreshes(timeout=120)  # the last refresh gives up first
    added = [r[0] * 1000 for r in runs]
    sources = Counter(r[2].split(";")[0] for r in runs)
    return {"fault": fault, "solves": len(runs), "succeeded": sum(r[1] for r in runs),
            "first_resolution_ms": first_s * 1000, "first_source": first.source,
            "added_median_ms": statistics.median(added), "added_p99_ms": percentile(added, 0.99),
            "added_max_ms": max(added), "sources": dict(sources)}


def one_shot(fault: str, service, problem_file: Path, runs: int) -> dict:
    """The CLI's one-shot production solve under ``fault``: seconds to its printed result
    and to its exit, per run, and what it served."""
    from fresh_solver import devstack

    command = [str(devstack.venv_bin() / "fresh-solver"), "solve", str(problem_file),
               "--production", TEMPLATE, "--json", "--time-limit", "0.05"]
    printed, exited, served = [], [], []
    with injected(fault, service, 0.0) as url:
        for _ in range(runs):
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                       env=os.environ | {"MLFLOW_TRACKING_URI": url})
            first = process.stdout.read(1)
            printed.append(time.perf_counter() - started)
            output = first + process.stdout.read()
            process.wait()
            exited.append(time.perf_counter() - started)
            served.append(json.loads(output)["params_source"].split(";")[0]
                          if process.returncode == 0 else f"exit {process.returncode}")
    return {"fault": fault, "printed_s": printed, "exited_s": exited,
            "served": dict(Counter(served))}


def main(argv: list[str] | None = None) -> int:
    """Run every fault and tabulate."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--solves", type=int, default=25, help="per thread and fault")
    parser.add_argument("--delay", type=float, default=2.0, help="the slow proxy's delay, s")
    parser.add_argument("--cli-runs", type=int, default=5,
                        help="one-shot CLI solves per fault (0: none)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fresh-solver-faults-"))
    os.environ["FRESH_SOLVER_HOME"] = str(scratch / "client")
    os.environ["FRESH_SOLVER_PARAMS_TTL"] = "0.05"
    os.environ.pop("FRESH_SOLVER_REGISTRY_BUDGET_S", None)  # the default budget is measured

    from fresh_solver import devstack, production
    from fresh_solver.fingerprint import machine_fingerprint
    from fresh_solver.model import problem_to_dict
    from fresh_solver.model.generate import generate_family
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry

    service = devstack.start_mlflow(scratch / "server", devstack.free_port())
    try:
        os.environ["MLFLOW_TRACKING_URI"] = service.url
        registry = ParameterRegistry()
        version = registry.register(TEMPLATE, SolverConfig.from_dict({"cp_sat": {
            "num_workers": 1}}))
        registry.promote(TEMPLATE, version, "benchmark", override_validation=True)
        production.get_solver_config(TEMPLATE)  # the disk copy of the last good set
        problem = generate_family("small", 1, template_id=TEMPLATE)
        rows = [measure(fault, service, problem, args.threads, args.solves, args.delay)
                for fault in FAULTS]
        problem_file = scratch / "problem.json"
        problem_file.write_text(json.dumps(problem_to_dict(problem)))
        cli_rows = [one_shot(fault, service, problem_file, args.cli_runs)
                    for fault in ONE_SHOT_FAULTS if args.cli_runs]
    finally:
        devstack.stop(service)
    lines = ["| fault | solves | succeeded | first resolution ms | added latency median / "
             "p99 / max ms | served |", "|---|---|---|---|---|---|"]
    for r in rows:
        served = ", ".join(f"{k} ({v})" for k, v in r["sources"].items())
        lines.append(f"| {r['fault']} | {r['solves']} | {r['succeeded']} | "
                     f"{r['first_resolution_ms']:.0f} | {r['added_median_ms']:.3f} / "
                     f"{r['added_p99_ms']:.3f} / {r['added_max_ms']:.3f} | {served} |")
    if cli_rows:
        lines += ["", f"One-shot `fresh-solver solve FILE --production {TEMPLATE} --json`, "
                  f"{args.cli_runs} runs per fault (median, min-max):", "",
                  "| registry | result printed s | process exited s | served |",
                  "|---|---|---|---|"]
        for r in cli_rows:
            cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
                     for v in (r["printed_s"], r["exited_s"])]
            served = ", ".join(f"{k} ({v})" for k, v in r["served"].items())
            lines.append(f"| {r['fault']} | {cells[0]} | {cells[1]} | {served} |")
    report = "\n".join([
        "# Production solves under registry faults", "",
        f"{args.threads} threads x {args.solves} solves per fault, parameter TTL 0.05 s, "
        f"registry budget {production.budget_seconds():g} s, slow proxy {args.delay:g} s.",
        "", *lines, "", f"Machine: {machine_fingerprint()}", "",
        f"Rerun: `{rerun_command('benchmarks.registry_faults', argv)}`", ""])
    write_results(args.out, {"rows": rows, "one_shot": cli_rows,
                             "machine": machine_fingerprint(),
                             "threads": args.threads, "solves": args.solves,
                             "delay_s": args.delay}, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
