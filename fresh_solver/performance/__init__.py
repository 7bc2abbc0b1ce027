"""Measuring solver speed honestly: time to target, paired comparisons, benchmarks.

The source document's names are importable from here (``from fresh_solver.performance import
BenchmarkRunner``), loaded on first use: importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchmarkRunner": "fresh_solver.performance.runner",
    "TemplateBenchmark": "fresh_solver.performance.definitions",
    "RegressionDetector": "fresh_solver.performance.regression",
    "ConstraintProfiler": "fresh_solver.performance.profilers",
    "SolverProfiler": "fresh_solver.performance.profilers",
    "MemoryProfiler": "fresh_solver.performance.profilers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load a source-document name from its module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
