"""No production record lost while the operations store is down: the figure for the README.

    python -m benchmarks.spool_figure --solves 200 --out out/spool

N one-shot ``fresh-solver solve --production`` processes run while their PostgreSQL store is
unreachable (a port nothing listens on, in front of this machine's server); each keeps its
record in the spool. Then the store comes back (a forwarder starts on that port) and one more
solve runs: the store must hold N + 1 rows, none twice, and the spool must be empty. Then K
solves run with the spool folder made unwritable: each must say its record is lost. Needs
PostgreSQL on 127.0.0.1:5432 (a throw-away database, dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.faults import TcpForwarder
from benchmarks.record import rerun_command, write_results
from fresh_solver import devstack
from fresh_solver.fingerprint import machine_fingerprint

TEMPLATE = "spool"


def solve(problem: Path, home: Path, url: str) -> subprocess.CompletedProcess:
    env = os.environ | {"FRESH_SOLVER_HOME": str(home), "FRESH_SOLVER_DB_URL": url,
                        "FRESH_SOLVER_MONITOR_FLUSH_S": "0.5"}
    return subprocess.run([sys.executable, "-m", "fresh_solver.cli", "solve", str(problem),
                           "--production", TEMPLATE, "--time-limit", "0.2", "--json"],
                          env=env, cwd=home, capture_output=True, text=True, timeout=300,
                          check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solves", type=int, default=200)
    parser.add_argument("--lossy", type=int, default=5, help="solves with no spool folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import sqlalchemy as sa

    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict
    from fresh_solver.operations import spool, store

    home = (args.out / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    problem = home / "problem.json"
    problem.write_text(json.dumps(problem_to_dict(generate_family("small", 1,
                                                                  template_id=TEMPLATE))))
    real = f"{devstack.DEFAULT_PG_SERVER}/fs_spool_{uuid.uuid4().hex[:8]}"
    devstack.ensure_database(real)
    port = devstack.free_port()
    url = real.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    forwarder = None
    try:
        started, kept, failed = time.monotonic(), 0, []
        for i in range(args.solves):
            done = solve(problem, home, url)
            kept += "records kept in" in done.stderr
            if done.returncode != 0 or "Traceback" in done.stderr:
                failed.append(done.stderr[-500:])
            print(f"store down: {i + 1}/{args.solves} solves, {kept} kept on disk",
                  file=sys.stderr, flush=True)
        os.environ["FRESH_SOLVER_HOME"] = str(home)
        waiting = len(spool.waiting(url))
        forwarder = TcpForwarder(port, ("127.0.0.1", 5432))
        back = solve(problem, home, url)
        engine = sa.create_engine(real)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(store.solves)).scalar()
            distinct = conn.execute(sa.select(sa.func.count(sa.distinct(
                sa.tuple_(store.solves.c.at, store.solves.c.host)))).select_from(
                store.solves)).scalar()
            ledger = conn.execute(sa.select(sa.func.count()).select_from(store.spooled)).scalar()
        engine.dispose()
        left = len(spool.waiting(url))
        forwarder.close()
        forwarder = None
        lossy_home = home / "lossy"
        lossy_home.mkdir(exist_ok=True)
        (lossy_home / "spool").write_text("a file where the spool folder should be")
        (lossy_home / "problem.json").write_text(problem.read_text())
        told = sum("records lost" in solve(lossy_home / "problem.json", lossy_home,
                                           url).stderr for _ in range(args.lossy))
        data = {"command": rerun_command(__spec__.name, argv), "machine": machine_fingerprint(),
                "solves_while_down": args.solves, "kept_on_disk": kept,
                "spool_files_waiting": waiting, "failed_processes": len(failed),
                "failures": failed[:3], "solve_once_back_exit": back.returncode,
                "rows_in_store": rows, "distinct_rows": distinct, "ledger_rows": ledger,
                "spool_files_left": left, "lossy_solves": args.lossy,
                "lossy_solves_that_said_so": told,
                "seconds": round(time.monotonic() - started, 1)}
    finally:
        if forwarder is not None:
            forwarder.close()
        store.dispose_all()
        devstack.drop_database(real)
    report = (f"{data['solves_while_down']} production solves while the store was down: "
              f"{data['kept_on_disk']} kept on disk ({data['spool_files_waiting']} spool "
              f"files), {data['failed_processes']} failed; store back, one more solve: "
              f"{data['rows_in_store']} rows ({data['distinct_rows']} distinct, "
              f"{data['ledger_rows']} spool files in the ledger), {data['spool_files_left']} "
              f"left on disk. Spool folder unwritable: {data['lossy_solves_that_said_so']} of "
              f"{data['lossy_solves']} solves said their record was lost. "
              f"{data['seconds']} s.\n")
    write_results(args.out, data, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
