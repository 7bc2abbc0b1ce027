"""Problem and schedule data: immutable, validated on construction from JSON or benchmark files."""

from fresh_solver.model.problem import (
    OBJECTIVES,
    Job,
    Machine,
    Mode,
    Precedence,
    Problem,
    Task,
    Template,
    problem_from_dict,
    problem_to_dict,
)
from fresh_solver.model.readers import load_problem, read_fjs, read_jobshop
from fresh_solver.model.schedule import Assignment, Schedule, load_schedule

__all__ = [
    "OBJECTIVES",
    "Assignment",
    "Job",
    "Machine",
    "Mode",
    "Precedence",
    "Problem",
    "Schedule",
    "Task",
    "Template",
    "load_problem",
    "load_schedule",
    "problem_from_dict",
    "problem_to_dict",
    "read_fjs",
    "read_jobshop",
]
