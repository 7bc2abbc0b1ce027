"""What every benchmark command records: the command that reruns it, and its output files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rerun_command(module: str, argv: list[str] | None) -> str:
    """The command line that reproduces this measurement, stored with its results."""
    return f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)


def write_results(out: Path, data: dict[str, Any], report: str) -> None:
    """``results.json`` (everything measured) and ``report.md`` (the table) in ``out``; the
    report is printed too."""
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "report.md").write_text(report)
    print(report)
