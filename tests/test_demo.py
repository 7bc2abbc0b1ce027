"""`make demo` from a fresh clone: the README's first command, as a new user runs it.

The clone gets its own .venv from uv.lock (uv's package cache makes that quick after the
first time) and its own data folder; ``DEMO_ARGS=--quick`` keeps the budget to seconds of
solving (the full demo's figures are measured, not tested). A bad setting is refused before
anything runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to try the README's command on a fresh clone")
    clone = tmp_path_factory.mktemp("clone") / "fresh-solver"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    return clone


def clean_env(home: Path) -> dict[str, str]:
    # Not inherited from `make test` either: MAKEFLAGS/MAKELEVEL make the inner make print
    # "Entering directory" lines on stdout.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "AIRFLOW", "FRESH_SOLVER_", "VIRTUAL_ENV", "MAKE",
                                "MFLAGS"))}
    return env | {"FRESH_SOLVER_HOME": str(home)}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_make_demo_from_a_fresh_clone(fresh_clone: Path) -> None:
    home = fresh_clone / ".fresh_solver"
    done = subprocess.run(["make", "--no-print-directory", "demo", "DEMO_ARGS=--quick",
                           f"PYTHON={Path(sys.executable).name}"],
                          cwd=fresh_clone, env=clean_env(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(done.stderr[-2500:])
    assert summary["template_id"] == "demo"
    assert summary["home"] == str(home)
    assert summary["mlflow_store"] == f"sqlite:///{home / 'mlflow.db'}"
    assert Path(summary["airflow_db"]).is_file()
    assert not (fresh_clone / "mlruns").exists()  # no artifacts in the caller's folder
    solve = summary["production_solve"]
    assert solve["valid"] is True and solve["status"] in ("OPTIMAL", "FEASIBLE")
    verdict = summary["validation"]
    if summary.get("promoted_version"):
        assert verdict["passed"]
        assert solve["params_source"] == \
            f"registry:fresh-solver-demo/{summary['promoted_version']}"
        assert "[3/5] Validation PASSED" in done.stderr
    else:
        assert solve["params_source"] == "defaults"
        assert "[3/5] Validation did NOT pass" in done.stderr
    for step in range(1, 6):
        assert f"[{step}/5]" in done.stderr


def test_the_demo_refuses_a_bad_setting_before_starting(fresh_clone: Path,
                                                        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fresh_solver.demo", "--dags",
                           str(fresh_clone / "dags"), "--conf", '{"trials": 0}'],
                          env=clean_env(tmp_path / "home"), capture_output=True, text=True)
    assert done.returncode == 2
    assert "params.trials: 0 is less than the minimum of 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "airflow").exists()  # nothing started
