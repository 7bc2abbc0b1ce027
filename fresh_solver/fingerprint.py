"""The context every measured figure is recorded with: CPU model and count, versions."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import ortools

from fresh_solver.cores import usable_cores


def machine_fingerprint() -> dict[str, str]:
    """CPU model, usable cores, Python and OR-Tools versions of this process."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return {"cpu": cpu, "cores": str(usable_cores()),
            "python": platform.python_version(), "ortools": ortools.__version__}


def fingerprint_id(fingerprint: dict[str, str] | None = None) -> str:
    """A short stable id of a machine fingerprint (12 hex digits), for tables and tags where
    the whole dict does not fit: equal ids mean the same CPU, cores and versions."""
    import hashlib
    import json

    data = json.dumps(fingerprint or machine_fingerprint(), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:12]
