"""cpsat-autotune, the PyPI peer tuner, on the tuning benchmark's training models.

Runs in its own environment (``make peers-venv`` → ``.venv-peers``), never the project's:

    .venv-peers/bin/python benchmarks/autotune_peer.py \\
        --models a.txt b.txt c.txt --cpu-budget 300 --seed 0 --num-workers 8 --out best.json

It is cpsat-autotune 0.6.0's ``tune_time_to_optimal`` (TPE over its suggested parameters, the
defaults enqueued first, its knockout and re-sampling of new incumbents) with four changes:
- three fixes for OR-Tools 9.15 (DESIGN §9): models load through ``CpModel().proto``;
  parameters are built as a protobuf ``SatParameters`` and merged as text (9.15's pybind
  ``solver.parameters`` refuses enum values given as ints); ``binary_minimization_algorithm``,
  which 9.15 removed, is dropped from the space;
- it tunes over several models (the benchmark's training instances) where it tunes one: the
  k-th run of a parameter set solves model k mod n, so a trial of n samples sees each once;
- it stops after ``--cpu-budget`` CPU-seconds of this process (CP-SAT's threads included,
  checked between trials) instead of after a trial count, so it gets the project's budget;
- the worker count is fixed to the project's (``--num-workers``), so both tune the same solver.

It prints nothing but its log; ``--out`` gets the best parameters as the project's ``cp_sat``
section (protobuf JSON names) with the trial count and the CPU-seconds spent. No import of the
project: this file is loaded by path in the peer environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

REMOVED_IN_ORTOOLS_9_15 = ("binary_minimization_algorithm",)


def sat_parameters(params: dict[str, Any], num_workers: int | None = None):
    """The ``SatParameters`` message for cpsat-autotune's parameter dict (enum values as ints
    are fine on the protobuf message, unlike on 9.15's ``solver.parameters``)."""
    from ortools.sat import sat_parameters_pb2

    message = sat_parameters_pb2.SatParameters()
    for key, value in params.items():
        if isinstance(value, list | tuple):
            getattr(message, key).extend(value)
        else:
            setattr(message, key, value)
    if num_workers is not None:
        message.num_workers = num_workers
    return message


def as_cp_sat_section(message) -> dict[str, Any]:
    """The message as the project's ``cp_sat`` JSON (field names, enum names)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def load_model(path: Path):
    """A CP-SAT model from its text proto (9.15: ``model.proto``, not ``model.Proto()``)."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    if not model.proto.parse_text_format(path.read_text()):
        raise ValueError(f"{path}: not a CP-SAT model in text format")
    return model


def tune(models: list, cpu_budget: float, seed: int, num_workers: int,
         trial_time_limit: float) -> dict[str, Any]:
    """cpsat-autotune's time-to-optimal tuning over ``models`` for ``cpu_budget`` CPU-seconds."""
    import optuna
    from cpsat_autotune.caching_solver import CachingScorer
    from cpsat_autotune.cpsat_parameters import (
        CPSAT_PARAMETER_SUGGESTIONS,
        get_parameter_by_name,
    )
    from cpsat_autotune.metrics import MinTimeToOptimal
    from cpsat_autotune.objective import OptunaCpSatStrategy
    from cpsat_autotune.parameter_space import CpSatParameterSpace
    from ortools.sat.python import cp_model

    class RoundRobinScorer(CachingScorer):
        """Its scorer over several models: the k-th run of a parameter set solves model k mod n,
        on a solver whose parameters are merged from a protobuf message (9.15)."""

        def __init__(self, all_models: list, metric) -> None:
            super().__init__(all_models[0], metric)
            self.models = all_models
            self.runs: dict[frozenset, int] = {}

        def _prepare_solver(self, params):
            key = self._create_key_from_params(params)
            k = self.runs.get(key, 0)
            self.runs[key] = k + 1
            self.model = self.models[k % len(self.models)]
            solver = cp_model.CpSolver()
            text = str(sat_parameters(params, num_workers))
            if not solver.parameters.merge_text_format(text):
                raise ValueError(f"CP-SAT refused the parameters {params}")
            return solver

    random.seed(seed)  # its solver seeds come from the random module
    # Its suggested space, less what 9.15 removed and what it would set on an extra subsolver
    # (none of the suggestions; the project's cp_sat section holds top-level parameters only).
    space = CpSatParameterSpace([p for p in CPSAT_PARAMETER_SUGGESTIONS
                                 if p not in REMOVED_IN_ORTOOLS_9_15
                                 and not get_parameter_by_name(p).subsolver])
    space.drop_parameter("use_lns_only")
    space.drop_parameter("max_time_in_seconds")
    space.filter_applicable_parameters(models)
    scorer = RoundRobinScorer(models, MinTimeToOptimal(max_time_in_seconds=trial_time_limit))
    n = len(models)
    strategy = OptunaCpSatStrategy(space, scorer=scorer, n_samples_for_trial=n,
                                   n_samples_for_verification=2 * n)
    cpu0 = time.process_time()  # its reference runs count, as the project's do
    default_score = strategy.get_baseline().mean()
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(space.get_default_params_for_optuna())

    def stop_at_budget(study, _trial) -> None:
        if time.process_time() - cpu0 >= cpu_budget:
            study.stop()

    study.optimize(strategy, callbacks=[stop_at_budget])
    best = strategy.best_params()
    return {"cp_sat": as_cp_sat_section(sat_parameters(best.params)),
            "autotune_params": best.params, "best_score": best.mean(),
            "default_score": default_score, "trials": len(study.trials),
            "space": sorted(space.tunable_parameters)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True)
    parser.add_argument("--cpu-budget", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, required=True)
    parser.add_argument("--trial-time-limit", type=float, default=5.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        models = [load_model(path) for path in args.models]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import cpsat_autotune  # noqa: F401  (it configures logging at import; quieten it after)

    logging.getLogger().setLevel(logging.WARNING)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = tune(models, args.cpu_budget, args.seed, args.num_workers, args.trial_time_limit)
    result |= {"cpu_seconds": round(time.process_time() - cpu0, 1),
               "wall_seconds": round(time.perf_counter() - wall0, 1)}
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
