"""Profilers: where a model's build goes, what CP-SAT does with it, and the memory both take.

    groups = ConstraintProfiler().profile_template_model(problem)       # build, per group
    ablation = ConstraintProfiler().ablation(problem, seeds=[0, 1, 2])  # solve-time impact
    solver = SolverProfiler().profile_solver_performance(problem)       # CP-SAT's log, parsed
    memory = MemoryProfiler().profile_memory_usage(problem)             # RSS and allocations

**ConstraintProfiler** builds the template model group by group with the template model's own
builder functions, in its order (greedy warm start, task variables and modes, precedences,
machine resources, symmetry breaking, objective, redundant bounds, search strategy, hints), and
counts what each group added to the proto and how long it took. A test checks that the groups
add up to :func:`~fresh_solver.solver.template_model.build_template_model`'s model, so the two
cannot drift apart silently. The optional groups (the :class:`ModelOptions` switches) are also
ablated: each switched against the configuration on the same seeds, one solve at a time, timed
to the configuration's own target (DESIGN §8, PAR2 when missed).

**SolverProfiler** solves with ``log_search_progress`` sent to a callback (never to stdout) and
parses the log (:mod:`fresh_solver.performance.search_log`): presolve time and reductions, the
subsolver behind each improving solution, time to first solution, bound progress.

**MemoryProfiler** measures the build and the solve separately: peak RSS of the process (psutil
sampled by a thread, :func:`fresh_solver.performance.runner.peak_rss`; it includes CP-SAT's C++
memory) and Python allocations (``tracemalloc``: Python objects only, with the top allocation
sites). ``tracemalloc`` slows Python code down, so its build is not the build time to quote.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from statistics import median
from typing import Any

from ortools.sat.python import cp_model

from fresh_solver.measure import (
    geometric_mean,
    paired_speedup,
    target_of,
    time_to_target,
    wilcoxon_p,
)
from fresh_solver.model import Problem
from fresh_solver.params import apply_parameters
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.options import switches_for
from fresh_solver.performance.search_log import parse_search_log
from fresh_solver.solver import ModelOptions, solve
from fresh_solver.solver.constraints import (
    add_machine_resources,
    add_precedences,
    add_redundant_makespan_bounds,
    add_redundant_tardiness_bound,
    add_search_strategy,
    add_symmetry_breaking,
)
from fresh_solver.solver.heuristic import placement_objective
from fresh_solver.solver.objective import add_makespan, add_weighted_tardiness
from fresh_solver.solver.solve import build_model
from fresh_solver.solver.template_model import add_hints, warm_start
from fresh_solver.solver.variables import add_task_variables

_MB = 2**20


@dataclass(frozen=True)
class GroupProfile:
    """What one constraint group added to the model. ``optional``: a ModelOptions switch
    decides whether it is built (``enabled``)."""

    name: str
    build_time_s: float
    variables: int
    constraints: int
    constraints_by_kind: dict[str, int]
    hints: int = 0
    optional: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class AblationRow:
    """One optional group's solve-time impact: ``speedup`` = geometric mean over the paired
    seeds of (time without it / time with it), > 1 when the group makes the solve faster;
    ``p_value``: one-sided Wilcoxon that it does (1.0 when nothing differs)."""

    option: str
    enabled_in_config: bool
    seeds: list[int]
    with_times_s: list[float]
    without_times_s: list[float]
    median_with_s: float
    median_without_s: float
    speedup: float
    p_value: float


def _constraint_kinds() -> tuple[str, ...]:
    """The constraint kinds of the proto, from its ``has_<kind>`` accessors."""
    probe = cp_model.CpModel()
    probe.add(probe.new_int_var(0, 1, "x") >= 0)
    return tuple(a[4:] for a in dir(probe.proto.constraints[0]) if a.startswith("has_"))


class ConstraintProfiler:
    """Build time and size per constraint group; solve-time impact of the optional ones."""

    def profile_constraint_performance(
        self, model: cp_model.CpModel,
        constraint_functions: list[tuple[str, Callable[[cp_model.CpModel], Any]]],
    ) -> list[GroupProfile]:
        """The seed's form: call each ``(name, function)`` on ``model`` in order and record
        what it added (variables, constraints per kind, hints) and how long it took."""
        kinds = _constraint_kinds()
        proto = model.proto
        profiles = []
        for name, function in constraint_functions:
            n_vars, n_cons = len(proto.variables), len(proto.constraints)
            n_hints = len(proto.solution_hint.vars)
            t0 = time.perf_counter()
            function(model)
            elapsed = time.perf_counter() - t0
            by_kind: dict[str, int] = {}
            for k in range(n_cons, len(proto.constraints)):
                constraint = proto.constraints[k]
                kind = next((c for c in kinds if getattr(constraint, f"has_{c}")()), "empty")
                by_kind[kind] = by_kind.get(kind, 0) + 1
            profiles.append(GroupProfile(
                name, elapsed, len(proto.variables) - n_vars, len(proto.constraints) - n_cons,
                by_kind, len(proto.solution_hint.vars) - n_hints))
        return profiles

    def profile_template_model(self, problem: Problem,
                               options: ModelOptions | None = None) -> list[GroupProfile]:
        """The template model built group by group, as ``build_template_model`` builds it;
        the optional groups switched off in ``options`` are listed with zero figures."""
        options = options or ModelOptions()
        model = cp_model.CpModel()
        state: dict[str, Any] = {"horizon": problem.horizon, "warm": None}

        def greedy(_: cp_model.CpModel) -> None:
            state["warm"] = warm_start(problem, options)
            if problem.objective == "makespan":
                state["horizon"] = min(state["horizon"],
                                       placement_objective(problem, state["warm"]))

        def objective(m: cp_model.CpModel) -> None:
            if problem.objective == "makespan":
                lower = max(job.release + problem.template_of(job).critical_path
                            for job in problem.jobs)
                state["makespan"] = add_makespan(m, problem, state["tasks"], lower,
                                                 state["horizon"])
            else:
                state["tardiness"] = add_weighted_tardiness(m, problem, state["tasks"],
                                                            state["horizon"])

        def bounds(m: cp_model.CpModel) -> None:
            if problem.objective == "makespan":
                add_redundant_makespan_bounds(m, problem, state["tasks"], state["makespan"])
            elif state["tardiness"] is not None:
                add_redundant_tardiness_bound(m, problem, state["tardiness"])

        def hints(m: cp_model.CpModel) -> None:
            if problem.objective == "makespan":
                m.add_hint(state["makespan"], placement_objective(problem, state["warm"]))
            add_hints(m, state["tasks"], state["warm"])

        makespan = problem.objective == "makespan"
        steps: list[tuple[str, Callable[[cp_model.CpModel], Any], str | None, bool]] = [
            ("greedy_warm_start", greedy, "warm_start", makespan),
            ("tardiness_dispatch", greedy, "tardiness_hint", not makespan),
            ("task_variables_and_modes", lambda m: state.update(
                tasks=add_task_variables(m, problem, state["horizon"])), None, True),
            ("precedences", lambda m: add_precedences(m, problem, state["tasks"]), None, True),
            ("machine_resources", lambda m: add_machine_resources(m, problem, state["tasks"]),
             None, True),
            ("symmetry_breaking", lambda m: add_symmetry_breaking(m, problem, state["tasks"]),
             "symmetry_breaking", True),
            ("objective", objective, None, True),
            ("redundant_bounds", bounds, "redundant_bounds", True),
            ("search_strategy", lambda m: add_search_strategy(m, problem, state["tasks"]),
             "search_strategy", True),
            ("hints", hints, "warm_start" if makespan else "tardiness_hint", True),
        ]
        enabled = {name: applies and (switch is None or getattr(options, switch))
                   for name, _, switch, applies in steps}
        built = iter(self.profile_constraint_performance(
            model, [(name, fn) for name, fn, _, _ in steps if enabled[name]]))
        return [replace(next(built), optional=switch is not None) if enabled[name]
                else GroupProfile(name, 0.0, 0, 0, {}, optional=switch is not None,
                                  enabled=False)
                for name, _, switch, _ in steps]

    def ablation(self, problem: Problem, config: SolverConfig | None = None, *,
                 seeds: list[int], time_limit: float = 10.0) -> list[AblationRow]:
        """Each ModelOptions switch that applies to the problem's objective flipped against
        ``config``, paired on ``seeds``.

        Per seed the configuration runs first and sets the target (its proven optimum, or its
        best objective at the cap); each variant then runs with the same seed and is timed to
        that target, stopping once it reaches an unproven one. Build time is included.
        """
        config = config or SolverConfig()
        names = switches_for(problem.objective)
        times: dict[str, list[float]] = {"config": [], **{n: [] for n in names}}
        used = []
        for seed in seeds:
            reference = solve(problem, options=config.model, params=config.cp_sat,
                              time_limit=time_limit, seed=seed, check=False)
            target = target_of(reference, time_limit)
            if target is None:  # nothing found: no target, the seed tells nothing
                continue
            used.append(seed)
            times["config"].append(time_to_target(reference, target))
            stop_at = None if target.proven else target.objective
            for name in names:
                flipped = replace(config.model, **{name: not getattr(config.model, name)})
                result = solve(problem, options=flipped, params=config.cp_sat,
                               time_limit=time_limit, seed=seed, stop_at=stop_at, check=False)
                times[name].append(time_to_target(result, target))
        rows = []
        for name in names:
            on = getattr(config.model, name)
            with_t, without_t = ((times["config"], times[name]) if on
                                 else (times[name], times["config"]))
            if not with_t:
                continue
            rows.append(AblationRow(
                option=name, enabled_in_config=on, seeds=used, with_times_s=with_t,
                without_times_s=without_t, median_with_s=median(with_t),
                median_without_s=median(without_t),
                speedup=geometric_mean([paired_speedup(w, t) for w, t in zip(without_t,
                                                                             with_t)]),
                p_value=wilcoxon_p(without_t, with_t)))
        return rows


@dataclass
class SolverProfile:
    """One solve as CP-SAT's response and search log describe it (``log``: the raw text)."""

    status: str
    objective: float | None
    best_bound: float | None
    wall_time_s: float
    num_workers: int | None
    presolve: dict[str, Any]
    initial_model: dict[str, Any] | None
    presolved_model: dict[str, Any] | None
    solutions: list[dict[str, Any]]
    solutions_by_subsolver: dict[str, int]
    time_to_first_s: float | None
    bound_progress: list[dict[str, Any]]
    finished_by: str | None
    subsolvers: dict[str, list[str]]
    response: dict[str, str]
    log: str = field(repr=False, default="")

    def to_dict(self) -> dict[str, Any]:
        """Everything but the raw log (an artifact of its own)."""
        data = asdict(self)
        del data["log"]
        return data


class SolverProfiler:
    """A solve with its search log captured and parsed."""

    def profile_solver_performance(self, problem: Problem | cp_model.CpModel,
                                   config: SolverConfig | cp_model.CpSolver | None = None,
                                   variables: Any = None, *, model: str = "template",
                                   time_limit: float = 10.0, seed: int = 0) -> SolverProfile:
        """Build ``problem`` with ``config`` and profile one solve (:meth:`profile_solve`).

        The source document's form, ``(model, solver, variables)`` with a built CP-SAT model
        and a configured solver, profiles that solve as it is; ``variables`` are not needed
        (the search log names what found each solution) and are ignored."""
        if isinstance(problem, cp_model.CpModel):
            solver = config if isinstance(config, cp_model.CpSolver) else cp_model.CpSolver()
            return self.profile_solve(problem, solver)
        config = config or SolverConfig()
        solver = cp_model.CpSolver()
        apply_parameters(solver, config.cp_sat)
        solver.parameters.random_seed = seed
        solver.parameters.max_time_in_seconds = time_limit
        built = build_model(problem, model, config.model)
        return self.profile_solve(built.model, solver)

    def profile_solve(self, model: cp_model.CpModel,
                      solver: cp_model.CpSolver) -> SolverProfile:
        """The seed's form (a model and a configured solver): solve with the search log sent
        to a callback, then parse it. A hint CP-SAT 9.15 crashes on is dropped and the solve
        retried, as the solve loop does."""
        lines: list[str] = []
        solver.parameters.log_search_progress = True
        solver.parameters.log_to_stdout = False
        solver.log_callback = lines.append
        t0 = time.perf_counter()
        try:
            status = solver.solve(model)
        except IndexError:
            if not model.proto.solution_hint.vars:
                raise
            model.clear_hints()
            lines.clear()
            t0 = time.perf_counter()
            status = solver.solve(model)
        wall = time.perf_counter() - t0
        text = "\n".join(lines)
        parsed = parse_search_log(text)
        solved = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        return SolverProfile(
            status=solver.status_name(status),
            objective=solver.objective_value if solved else None,
            best_bound=solver.best_objective_bound if solved else None,
            wall_time_s=wall, num_workers=parsed["num_workers"], presolve=parsed["presolve"],
            initial_model=parsed["initial_model"], presolved_model=parsed["presolved_model"],
            solutions=parsed["solutions"],
            solutions_by_subsolver=parsed["solutions_by_subsolver"],
            time_to_first_s=parsed["time_to_first_s"],
            bound_progress=parsed["bound_progress"], finished_by=parsed["finished_by"],
            subsolvers=parsed["subsolvers"], response=parsed["response"], log=text)


@dataclass(frozen=True)
class PhaseMemory:
    """Memory over one phase. RSS figures are the whole process's (MiB); ``python_*`` are
    tracemalloc's (Python allocations only, MiB)."""

    rss_before_mb: float
    peak_rss_mb: float
    rss_after_mb: float
    python_peak_mb: float
    python_retained_mb: float
    top_allocations: list[dict[str, Any]]

    @property
    def peak_increase_mb(self) -> float:
        return self.peak_rss_mb - self.rss_before_mb


@dataclass(frozen=True)
class MemoryProfile:
    build: PhaseMemory | None  # None when profiling a model built before the call
    solve: PhaseMemory
    status: str
    model_size: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for phase in ("build", "solve"):
            if data[phase] is not None:
                data[phase]["peak_increase_mb"] = getattr(self, phase).peak_increase_mb
        return data


class MemoryProfiler:
    """Peak RSS and Python allocations of a model's build and of its solve."""

    def __init__(self, top: int = 5):
        self.top = top

    def profile_memory_usage(self, problem: Problem | cp_model.CpModel,
                             config: SolverConfig | None = None, *, model: str = "template",
                             time_limit: float = 10.0, seed: int = 0) -> MemoryProfile:
        """Build, then solve, each measured on its own (module docstring).

        The source document's form, ``(model, variables)`` with a CP-SAT model already built,
        measures its solve only (``build`` is None: the build happened before the call);
        ``variables`` are ignored."""
        if isinstance(problem, cp_model.CpModel):
            solver = cp_model.CpSolver()
            solver.parameters.random_seed = seed
            solver.parameters.max_time_in_seconds = time_limit
            status, solve_phase = self._measure(lambda: solver.solve(problem))
            proto = problem.proto
            size = {"variables": len(proto.variables), "constraints": len(proto.constraints)}
            return MemoryProfile(None, solve_phase, solver.status_name(status), size)
        config = config or SolverConfig()
        built, build = self._measure(lambda: build_model(problem, model, config.model))
        solver = cp_model.CpSolver()
        apply_parameters(solver, config.cp_sat)
        solver.parameters.random_seed = seed
        solver.parameters.max_time_in_seconds = time_limit
        status, solve_phase = self._measure(lambda: solver.solve(built.model))
        return MemoryProfile(build, solve_phase, solver.status_name(status), built.size)

    def _measure(self, work: Callable[[], Any]) -> tuple[Any, PhaseMemory]:
        import psutil

        from fresh_solver.performance.runner import peak_rss

        process = psutil.Process()
        before = process.memory_info().rss / _MB
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        start_current = tracemalloc.get_traced_memory()[0]
        start_snapshot = tracemalloc.take_snapshot()
        try:
            with peak_rss() as peak:
                result = work()
            after = process.memory_info().rss / _MB
            current, python_peak = tracemalloc.get_traced_memory()
            ours = [tracemalloc.Filter(False, f) for f in (tracemalloc.__file__, __file__)]
            stats = tracemalloc.take_snapshot().filter_traces(ours).compare_to(
                start_snapshot.filter_traces(ours), "lineno")
        finally:
            if not was_tracing:
                tracemalloc.stop()
        top = [{"site": str(s.traceback[0]), "size_kb": round(s.size_diff / 1024, 1),
                "count": s.count_diff} for s in stats[:self.top] if s.size_diff > 0]
        return result, PhaseMemory(
            rss_before_mb=before, peak_rss_mb=max(peak[0], before, after), rss_after_mb=after,
            python_peak_mb=max(0.0, (python_peak - start_current) / _MB),
            python_retained_mb=(current - start_current) / _MB, top_allocations=top)

