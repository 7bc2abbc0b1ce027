"""The facade's parts that need no stores: the document's setattr loop over every value of the
shipped search spaces, the conversions back, symmetry breaking on a built model, and the
alerting set-up objects' checks."""

from __future__ import annotations

import pytest
from ortools.sat.python import cp_model

from fresh_solver.errors import InputError
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SHIPPED_SPACES, load_space
from fresh_solver.templates import (
    SolverParameters,
    SymmetryBreakingConfig,
    TemplateOptimizer,
    create_solver_with_parameters,
    plain_parameters,
    setattr_ready,
)


@pytest.mark.parametrize("space", sorted(SHIPPED_SPACES))
def test_document_setattr_loop_takes_every_value_of_the_shipped_spaces(space):
    for dimension in load_space(space).dimensions:
        if dimension.section != "cp_sat":
            continue
        name = dimension.name
        for value in dimension.candidates():
            value = int(value) if dimension.kind == "integer" else value
            solver = cp_model.CpSolver()
            params = SolverParameters(SolverConfig.from_dict({name: value}))
            for param_name, param_value in params.items():
                setattr(solver.parameters, param_name, param_value)
            assert plain_parameters(params) == SolverConfig.from_dict({name: value}).cp_sat


def test_enum_names_and_numbers_become_pybind_members():
    solver = cp_model.CpSolver()
    for value in ("FIXED_SEARCH", 1):
        for name, member in setattr_ready({"search_branching": value}).items():
            setattr(solver.parameters, name, member)
        assert str(solver.parameters.search_branching).endswith("FIXED_SEARCH")


def test_create_solver_with_a_dict_solves_and_keeps_model_switches():
    from fresh_solver.model.generate import generate_family

    solver = create_solver_with_parameters({"cp_sat": {"num_workers": 1},
                                            "model": {"symmetry_breaking": False}})
    assert solver.parameters.model_options.symmetry_breaking is False
    solution = solver.solve(generate_family("small", 1), time_limit=5)
    assert solution.status in ("OPTIMAL", "FEASIBLE") and solution.result.valid
    with pytest.raises(InputError, match="bogus"):
        create_solver_with_parameters({"bogus": 1})


def test_symmetry_breaking_constraints_on_a_model_built_without():
    from fresh_solver.model.generate import generate_family
    from fresh_solver.solver import ModelOptions, build_model

    problem = generate_family("small", 10)  # its first task has one mode on a unary machine
    built = build_model(problem, "template", ModelOptions(symmetry_breaking=False))
    added = TemplateOptimizer().add_symmetry_breaking_constraints(
        built.model, built, SymmetryBreakingConfig())
    assert added == len(problem.jobs) - 1
    assert TemplateOptimizer().add_symmetry_breaking_constraints(
        built.model, built.tasks, SymmetryBreakingConfig(enabled=False, problem=problem)) == 0
    with pytest.raises(InputError, match="BuiltModel"):
        TemplateOptimizer().add_symmetry_breaking_constraints(built.model, built.tasks)


def test_alert_set_up_objects_are_checked():
    from fresh_solver.operations import AlertChannel, AlertRule, AlertSeverity
    from fresh_solver.operations.config import default_config
    from fresh_solver.operations.seed_alerting import add_channel, add_rule

    assert AlertSeverity.HIGH == "critical" and AlertSeverity.LOW == "info"
    with pytest.raises(InputError, match="no SMTP server"):
        add_channel(default_config(), AlertChannel("mail", "email", {"recipients": ["a@b.c"]}))
    config = add_channel(default_config(), AlertChannel("hook", "webhook",
                                                        {"url": "http://127.0.0.1:9/x"}))
    config = add_rule(config, AlertRule("performance_degradation", "performance_change > 0.3",
                                        "HIGH", ["hook"]))
    rule = next(r for r in config.rules if r.name == "performance_degradation")
    assert (rule.severity, rule.channels) == ("critical", ("hook",))
    assert sum(r.name == "performance_degradation" for r in config.rules) == 1
    with pytest.raises(InputError, match="no channel named"):
        add_rule(config, AlertRule("x", "solves > 1", "warning", ["nowhere"]))


def test_an_edit_to_the_parameters_dict_is_what_gets_solved() -> None:
    """The document edits the dict it gets back (e.g. a time limit); the solve uses the dict
    as it is then, not the set it was made from."""
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.templates.parameters import SolverParameters, to_config

    params = SolverParameters(SolverConfig.from_dict(
        {"cp_sat": {"num_workers": 1, "search_branching": "FIXED_SEARCH"}}))
    assert to_config(params) == params.config
    params["max_time_in_seconds"] = 30
    assert to_config(params).cp_sat == {"num_workers": 1, "search_branching": "FIXED_SEARCH",
                                        "max_time_in_seconds": 30.0}
