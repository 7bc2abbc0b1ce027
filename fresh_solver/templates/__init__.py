"""The source document's template parameter management (``src/solver/templates/`` there), a
thin facade over tuning, validation, the registry and the production loader.

    from fresh_solver.templates import ParameterManager, TemplateOptimizer, TemplateValidator

``ParameterManager.validate_parameters`` is the document's statistical validation;
``fresh_solver.params.validate_parameters`` remains the structural check. See docs/seed_api.md.
"""

from fresh_solver.templates.manager import (
    ParameterManager,
    ParameterValidationResult,
    PromotionOutcome,
)
from fresh_solver.templates.optimizer import (
    OptimizationResult,
    SymmetryBreakingConfig,
    TemplateOptimizer,
)
from fresh_solver.templates.parameters import (
    BlessedParameters,
    SolverParameters,
    plain_parameters,
    setattr_ready,
)
from fresh_solver.templates.solving import (
    ConfiguredSolver,
    ProblemData,
    SolutionResult,
    create_solver_with_parameters,
)
from fresh_solver.templates.validator import TemplateValidationReport, TemplateValidator

__all__ = [
    "BlessedParameters",
    "ConfiguredSolver",
    "OptimizationResult",
    "ParameterManager",
    "ParameterValidationResult",
    "ProblemData",
    "PromotionOutcome",
    "SolutionResult",
    "SolverParameters",
    "SymmetryBreakingConfig",
    "TemplateOptimizer",
    "TemplateValidationReport",
    "TemplateValidator",
    "create_solver_with_parameters",
    "plain_parameters",
    "setattr_ready",
]
