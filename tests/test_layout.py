"""The tree's layers as DESIGN §2 draws them: the experiments in `benchmarks/` import the
library, never the other way round, and every `python -m` command the README and docs give
names a module that exists and runs (a moved or renamed module breaks a reader's command)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"python -m ((?:fresh_solver|benchmarks)(?:\.[a-z_]+)+)")


def documented_modules() -> list[str]:
    return sorted({m for doc in DOCUMENTS for m in COMMAND.findall(doc.read_text())})


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_library_never_imports_an_experiment() -> None:
    offenders = [str(path.relative_to(REPO))
                 for path in sorted((REPO / "fresh_solver").rglob("*.py"))
                 if any(name.split(".")[0] == "benchmarks" for name in imported_modules(path))]
    assert offenders == []


# The package's own commands: the CLI, the main job, the local stacks and two helpers that print
# a value for a shell line (docs/distributed.md). Any other module run as a command is an
# experiment and belongs in benchmarks/.
ENTRY_POINTS = {"cli", "demo", "devstack", "lifecycle.pool", "preload", "registry.accounts"}


def test_experiments_live_outside_the_package() -> None:
    package = REPO / "fresh_solver"
    commands = {".".join(path.relative_to(package).with_suffix("").parts)
                for path in package.rglob("*.py")
                if '__name__ == "__main__"' in path.read_text()}
    commands |= {".".join(path.parent.relative_to(package).parts)
                 for path in package.rglob("__main__.py")}
    assert commands == ENTRY_POINTS


@pytest.mark.parametrize("module", documented_modules())
def test_every_documented_command_names_a_module_that_exists(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, f"{module}: no such module"


@pytest.mark.parametrize("module", [m for m in documented_modules()
                                    if m.startswith("benchmarks.")])
def test_every_documented_experiment_answers_help(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")
