"""The context every measured figure is recorded with: CPU model and count, versions."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import ortools


def machine_fingerprint() -> dict[str, str]:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return {"cpu": cpu, "cores": str(len(os.sched_getaffinity(0))),
            "python": platform.python_version(), "ortools": ortools.__version__}
