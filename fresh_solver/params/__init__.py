"""CP-SAT parameters: validation against the installed OR-Tools and application to a solver."""

from fresh_solver.params.sat import apply_parameters, validate_parameters

__all__ = ["apply_parameters", "validate_parameters"]
