"""Measuring solver speed honestly: time to target, paired comparisons, benchmarks.

The source document's names are importable from here (``from fresh_solver.performance import
BenchmarkRunner``), loaded on first use: importing the package stays cheap.
"""

from fresh_solver.lazy import lazy_exports

_EXPORTS = {
    "BenchmarkRunner": "fresh_solver.performance.runner",
    "TemplateBenchmark": "fresh_solver.performance.definitions",
    "RegressionDetector": "fresh_solver.performance.regression",
    "ConstraintProfiler": "fresh_solver.performance.profilers",
    "SolverProfiler": "fresh_solver.performance.profilers",
    "MemoryProfiler": "fresh_solver.performance.profilers",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
