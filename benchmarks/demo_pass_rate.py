"""How often does an honest `make demo` pass validation? The demo run N times, each verdict.

    python -m benchmarks.demo_pass_rate --runs 8 --out out/demo_pass_rate
    python -m benchmarks.demo_pass_rate --runs 4 --same-home --out ...

Each run is the real main job (`python -m fresh_solver.demo`: the retune DAG through
`airflow dags test`, promotion, production solve) with the demo's settings. By default every
run gets a fresh data folder, as on a new machine; ``--same-home`` re-runs in one folder, as a
user re-running the demo does: from the second run on, validation also compares the candidate
with the Production set the previous run promoted (it must not be more than 10 % slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchmarks.record import rerun_command, write_results


def run_demo(home: Path, dags: Path, conf: str) -> dict:
    """One demo run in ``home``; its summary plus the wall time of the whole command."""
    env = os.environ | {"FRESH_SOLVER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fresh_solver.demo", "--dags", str(dags),
                           "--conf", conf], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        return {"error": done.stderr[-2000:], "command_s": wall}
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"command_s": wall}


def main(argv: list[str] | None = None) -> int:
    """Run the demo ``--runs`` times and tabulate verdicts, speedups and times."""
    from fresh_solver.fingerprint import machine_fingerprint

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--same-home", action="store_true",
                        help="re-run in one data folder (validation then also vs Production)")
    parser.add_argument("--dags", type=Path, default=Path("dags"))
    parser.add_argument("--conf", default="{}", help="JSON settings over the demo's")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fresh-solver-demo-rate-"))
    rows = []
    for i in range(args.runs):
        home = scratch / ("home" if args.same_home else f"home-{i}")
        summary = run_demo(home, args.dags.resolve(), args.conf)
        verdict = summary.get("validation") or {}
        row = {"run": i, "passed": bool(verdict.get("passed")),
               "speedup": verdict.get("speedup_factor"), "p_value": verdict.get("p_value"),
               "spread": (verdict.get("speedup_min"), verdict.get("speedup_max")),
               "reasons": verdict.get("reasons") or ([] if verdict or "error" in summary
                                                     else [summary["why_not_registered"]]),
               "params_source": summary.get("production_solve", {}).get("params_source"),
               "command_s": round(summary["command_s"], 1), "error": summary.get("error")}
        rows.append(row)
        print(f"run {i}: {'PASS' if row['passed'] else 'FAIL'} {row['speedup']}x "
              f"p={row['p_value']} {row['command_s']} s {row['reasons'] or ''}",
              file=sys.stderr, flush=True)
    passed = sum(r["passed"] for r in rows)
    times = [r["command_s"] for r in rows]
    mode = "re-runs in one data folder" if args.same_home else "fresh data folder per run"
    lines = [f"# make demo: {passed} of {len(rows)} runs passed validation", "",
             f"Mode: {mode}; "
             f"settings: the demo's, overridden by {args.conf}. Command time median "
             f"{median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f}).", "",
             "| run | verdict | speedup vs defaults (per-pair range) | Wilcoxon p | served | s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        spread = f" ({r['spread'][0]:.2f}-{r['spread'][1]:.2f})" if r["speedup"] else ""
        why = "; ".join(r["reasons"] or [str(r["error"])[:80]])
        lines.append(f"| {r['run']} | {'pass' if r['passed'] else 'FAIL: ' + why} "
                     f"| {r['speedup'] or 0:.2f}{spread} | {r['p_value'] or 1:.2g} "
                     f"| {r['params_source']} "
                     f"| {r['command_s']} |")
    lines += ["", f"Machine: {machine_fingerprint()}", "",
              f"Rerun: `{rerun_command('benchmarks.demo_pass_rate', argv)}`"]
    write_results(args.out, {"runs": rows, "passed": passed, "machine": machine_fingerprint(),
                             "same_home": args.same_home, "conf": args.conf},
                  "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
