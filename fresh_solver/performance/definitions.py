"""What a benchmark measures: its instances, seeds, budget, and the configurations it compares.

The source document's ``TemplateBenchmark(template_id, instance_counts, time_limit_seconds,
repetitions)`` plus what an honest comparison needs (DESIGN §8): the solver seeds, and the
configurations, compared paired. The instances are either N jobs of a template taken from a
problem file (``template_file`` + ``instance_counts``, see
:func:`fresh_solver.model.instantiate.instantiate_template`) or problem files (``problems``).

Configurations, by name (the first one is the *reference*, which sets every target):

- ``baseline``: the baseline model (DESIGN §5) with CP-SAT defaults: the "legacy" yardstick;
- ``template``: the template model with CP-SAT defaults;
- ``production``: the template's Production set from the registry
  (:func:`fresh_solver.production.get_solver_config`; its ``params_source`` says what served);
- ``file:<path>``: a parameter set file (``SolverConfig.from_dict``), on the template model.

Runs: every instance x seed x repetition, for every configuration. A repetition re-runs the same
(instance, seed) pair: CP-SAT with several workers is not deterministic, so repetitions show
the run-to-run spread; several seeds sample the solver's randomness as well.

A definition can be written as TOML (``fresh-solver benchmark run --config FILE``), with the
field names below at the top level; relative paths are read from the TOML file's folder::

    template_id = "part"
    template_file = "part.json"
    instance_counts = [1, 3, 5, 10]
    time_limit_seconds = 10
    repetitions = 3
    seeds = [0, 1]
    configurations = ["baseline", "template", "production", "file:tuned.json"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError
from fresh_solver.inputs import read_toml

NAMED_CONFIGURATIONS = ("baseline", "template", "production")
FILE_PREFIX = "file:"
COUNT_LIMIT = 10**5  # the problem format's limit on one entry's job count


@dataclass(frozen=True)
class TemplateBenchmark:
    """One benchmark; :meth:`check` says everything that is wrong with it at once."""

    template_id: str | None = None
    instance_counts: tuple[int, ...] = ()
    time_limit_seconds: float = 60.0
    repetitions: int = 3
    seeds: tuple[int, ...] = (0,)
    configurations: tuple[str, ...] = ("baseline", "template")
    template_file: str | None = None
    problems: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise :class:`InputError` naming every problem of the definition."""
        problems = []
        if self.problems and (self.template_file or self.instance_counts):
            problems.append("give problem files or a template file with instance counts, "
                            "not both")
        elif not self.problems and not self.template_file:
            problems.append("empty instance set: give problem files (--problems), or a "
                            "template file (--template) with instance counts (--counts)")
        if self.template_file:
            if not self.template_id:
                problems.append(f"template file {self.template_file}: name the template to "
                                "instantiate (template_id / --template-id)")
            if not self.instance_counts:
                problems.append("empty instance set: no instance counts for the template")
        elif self.instance_counts:
            problems.append("instance counts need a template file to instantiate")
        for count in self.instance_counts:
            if not _is_int(count) or not 1 <= count <= COUNT_LIMIT:
                problems.append(f"instance count {count!r}: must be an integer in "
                                f"1..{COUNT_LIMIT}")
        if len(set(self.instance_counts)) != len(self.instance_counts):
            problems.append(f"instance counts {list(self.instance_counts)}: listed twice")
        if not _is_int(self.repetitions) or self.repetitions < 1:
            problems.append(f"repetitions must be an integer >= 1, got {self.repetitions!r}")
        if isinstance(self.time_limit_seconds, bool) or not isinstance(
                self.time_limit_seconds, int | float) or not self.time_limit_seconds > 0:
            problems.append(f"time limit must be a positive number of seconds, got "
                            f"{self.time_limit_seconds!r}")
        if not self.seeds or not all(_is_int(s) and s >= 0 for s in self.seeds):
            problems.append(f"seeds must be one or more integers >= 0, got {list(self.seeds)}")
        elif len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds {list(self.seeds)}: listed twice")
        if not self.configurations:
            problems.append("no configurations to compare")
        for name in self.configurations:
            if name not in NAMED_CONFIGURATIONS and not (
                    isinstance(name, str) and name.startswith(FILE_PREFIX)
                    and len(name) > len(FILE_PREFIX)):
                problems.append(f"unknown configuration {name!r}: expected one of "
                                f"{', '.join(NAMED_CONFIGURATIONS)} or file:<path>")
        if len(set(self.configurations)) != len(self.configurations):
            problems.append(f"configurations {list(self.configurations)}: listed twice")
        if problems:
            raise InputError(problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, the TOML's field names (recorded with every benchmark run)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_definition(path: str | Path) -> TemplateBenchmark:
    """A definition from a TOML file; unknown keys and wrong types are refused by name."""
    path = Path(path)
    data = read_toml(path, f"--config {path}")
    known = {f.name for f in fields(TemplateBenchmark)}
    problems = [f"--config {path}: {key}: unknown field (expected one of "
                f"{', '.join(sorted(known))})" for key in sorted(set(data) - known)]
    for key in ("instance_counts", "seeds", "configurations", "problems"):
        if key in data and not isinstance(data[key], list):
            problems.append(f"--config {path}: {key}: must be a list")
    for key in ("template_id", "template_file"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"--config {path}: {key}: must be a string")
    if problems:
        raise InputError(problems)
    folder = path.parent

    def resolve(name: str) -> str:
        return str(folder / name) if not Path(name).is_absolute() else name

    if "template_file" in data:
        data["template_file"] = resolve(data["template_file"])
    if "problems" in data:
        data["problems"] = [resolve(p) for p in data["problems"]]
    if "configurations" in data:
        data["configurations"] = [
            FILE_PREFIX + resolve(c.removeprefix(FILE_PREFIX))
            if isinstance(c, str) and c.startswith(FILE_PREFIX) else c
            for c in data["configurations"]]
    definition = TemplateBenchmark(**{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in data.items()})
    definition.check()
    return definition


def with_overrides(definition: TemplateBenchmark, **changes: Any) -> TemplateBenchmark:
    """The definition with the given fields replaced (None means "keep")."""
    return replace(definition, **{k: v for k, v in changes.items() if v is not None})


def load_instances(definition: TemplateBenchmark) -> dict[str, Any]:
    """The benchmark's problems by instance name, in the order every configuration runs them.

    Template benchmarks: ``<template_id>-n<N>`` for each count, in the order given. Problem
    files: the file name without its extension (a name given twice is refused).
    """
    from fresh_solver.model import load_problem
    from fresh_solver.model.instantiate import instantiate_template

    if definition.template_file:
        source = load_problem(definition.template_file)
        try:
            return {f"{definition.template_id}-n{n}": instantiate_template(
                        source, definition.template_id, n) for n in definition.instance_counts}
        except InputError as exc:
            raise InputError([f"template file {definition.template_file}: {p}"
                              for p in exc.problems]) from None
    instances = {}
    for path in definition.problems:
        name = Path(path).stem
        if name in instances:
            raise InputError(f"{path}: instance name {name!r} is given twice")
        instances[name] = load_problem(path)
    return instances


@dataclass(frozen=True)
class Configuration:
    """One configuration as it is run: a model and a parameter set, and where the set came from
    (``params_source`` as in ``solve --json``: defaults, registry:<model>/<v>, file:<path>,
    fallback:<why>)."""

    name: str
    model: str
    config: Any  # SolverConfig
    params_source: str


def resolve_configurations(definition: TemplateBenchmark,
                           instances: dict[str, Any]) -> list[Configuration]:
    """Each named configuration made concrete, once, before any run (a Production set is read
    from the registry here: every run of the benchmark uses the same set)."""
    from fresh_solver.params.config import SolverConfig

    resolved = []
    for name in definition.configurations:
        if name == "baseline":
            resolved.append(Configuration(name, "baseline", SolverConfig(), "defaults"))
        elif name == "template":
            resolved.append(Configuration(name, "template", SolverConfig(), "defaults"))
        elif name == "production":
            from fresh_solver import production

            template_id = production_template(definition, instances)
            served = production.get_solver_config(template_id)
            resolved.append(Configuration(name, "template", served.config, served.source))
        else:
            path = name.removeprefix(FILE_PREFIX)
            resolved.append(Configuration(name, "template", _read_config(path),
                                          f"file:{path}"))
    return resolved


def production_template(definition: TemplateBenchmark, instances: dict[str, Any]) -> str:
    """The template whose Production set ``production`` means: the definition's, else the one
    template every instance has."""
    if definition.template_id:
        return definition.template_id
    ids = {t.id for problem in instances.values() for t in problem.templates}
    if len(ids) != 1:
        raise InputError("configuration 'production': the instances have templates "
                         f"{sorted(ids)}; name the template with --template-id")
    return ids.pop()


def _read_config(path: str):
    from fresh_solver.params.config import SolverConfig

    return SolverConfig.from_file(path, f"configuration file:{path}")
