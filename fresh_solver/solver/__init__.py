"""CP-SAT models (template and baseline), the solve loop, and the independent checker."""

from fresh_solver.params.options import PLAIN, ModelOptions
from fresh_solver.solver.checker import check_schedule
from fresh_solver.solver.solve import MODELS, SolveResult, build_model, solve

__all__ = ["MODELS", "PLAIN", "ModelOptions", "SolveResult", "build_model", "check_schedule",
           "solve"]
