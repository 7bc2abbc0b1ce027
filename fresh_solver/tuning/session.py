"""The tuning session's pure core: scikit-optimize's ask/tell over scored trials, no I/O.

A :class:`TuningSession` holds a spec, a search space, the training instances and the trials
told so far; nothing else. The optimiser is never kept between calls: :meth:`ask` rebuilds it
from the told trials (a *replay*), so a session restored from its MLflow record asks exactly
what the live session would have asked. That is what lets an Airflow task ask, retry or move to
another worker with the same result. :func:`run_trial` scores one configuration and is a pure
function of plain values. MLflow logging lives beside this module (``tuning.record``).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fresh_solver.choices import ESTIMATORS, METRICS
from fresh_solver.errors import InputError
from fresh_solver.measure import (
    TARGET,
    Runs,
    UnsoundClaim,
    floor_time,
    geometric_mean,
    measure_pairs,
    paired_speedup,
    wilcoxon_p,
)
from fresh_solver.model import Problem, load_problem
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import SearchSpace, load_space, plain_value
from fresh_solver.params.unsound import refuse_known_unsound
from fresh_solver.solver import solve
from fresh_solver.tuning.scoring import (
    Evaluation,
    Reference,
    UnsoundSchedule,
    evaluate,
    feasible_objectives,
    pair_score,
    per_pair,
    references_from,
    refuted_runs,
    score_result,
    worst_score,
)

# "random" is random search over the same space (for comparison); GBRT is broken (DESIGN §9).


def one_blas_thread():
    """The surrogate's fits on one BLAS thread. Its matrices have a row per trial (tens):
    OpenBLAS's threads gain nothing there and contend with each other and with any solve
    beside; skopt's ask of 4 points (six GP fits, each with L-BFGS restarts) took 4.4 s with
    them and 2.0 s without on the busy 2-core machine."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class TuningSpec:
    """Everything that defines a tuning session; a resumed session must match it."""

    template_id: str
    instance_paths: tuple[str, ...]
    trials: int
    trial_time_limit: float
    seeds: int
    metric: str = "time_to_target"
    space_path: str | None = None
    batch: int = 1
    estimator: str = "GP"
    tuner_seed: int = 0
    cap_factor: float | None = 2.0
    # The final race: the best few trials and the reference again, on fresh seeds. A trial's
    # own score is one noisy draw; only a confirmed, significant gain replaces the defaults.
    race: int = 2
    race_seeds: int = 2
    min_gain: float = 1.1
    # Intensification: an undecided race (a contender ahead but not yet significant) adds
    # another block of race_seeds fresh seeds, up to race_rounds blocks (1: one block only).
    race_rounds: int = 1

    def check(self) -> None:
        """Refuse a spec that cannot run, naming every bad field at once."""
        problems = []
        if not self.template_id or "/" in self.template_id:
            problems.append(f"--template-id: must be a non-empty name without '/', "
                            f"got {self.template_id!r}")
        if not self.instance_paths:
            problems.append("--instances: give at least one problem file")
        if self.trials < 1:
            problems.append(f"--trials: must be >= 1, got {self.trials}")
        if not 0 < self.trial_time_limit < math.inf:
            problems.append(f"--trial-time-limit: must be a positive number of seconds, "
                            f"got {self.trial_time_limit}")
        if self.cap_factor is not None and not 1 <= self.cap_factor < math.inf:
            problems.append(f"--cap-factor: must be >= 1 (or 0 for no capping), "
                            f"got {self.cap_factor}")
        if self.seeds < 1:
            problems.append(f"--seeds: must be >= 1, got {self.seeds}")
        if self.batch < 1:
            problems.append(f"--batch: must be >= 1, got {self.batch}")
        if self.race < 0 or self.race_seeds < 1 or not 0 < self.min_gain < math.inf \
                or self.race_rounds < 1:
            problems.append("--race must be >= 0, --race-seeds >= 1, --race-rounds >= 1 and "
                            "--min-gain > 0")
        if self.metric not in METRICS:
            problems.append(f"--metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.estimator not in ESTIMATORS:
            problems.append(f"--estimator: must be one of {', '.join(ESTIMATORS)}, "
                            f"got {self.estimator!r}")
        if problems:
            raise InputError(problems)

    @property
    def seed_list(self) -> list[int]:
        """The solver seeds every trial runs on (paired across trials)."""
        return list(range(self.seeds))

    def first_index(self, round_: int) -> int:
        """Trial index of a round's first point; the reference is trial 0."""
        return 1 + round_ * self.batch

    def round_size(self, round_: int) -> int:
        """Points asked in a round: ``batch``, less in the last round, 0 past the budget."""
        return max(0, min(self.batch, self.trials - round_ * self.batch))

    @property
    def rounds(self) -> int:
        """Rounds of ask / evaluate / tell the trial budget takes."""
        return -(-self.trials // self.batch)


def load_instances(paths: tuple[str, ...] | list[str]) -> tuple[dict[str, Problem], str]:
    """Problems keyed by file name, and the instance set's hash (over the files' contents)."""
    problems: dict[str, Problem] = {}
    for path in sorted(paths):
        key = Path(path).name
        if key in problems:
            raise InputError(f"--instances: two files are named {key!r}")
        problems[key] = load_problem(path)
    return problems, instance_set_hash(paths)


def instance_set_hash(paths: tuple[str, ...] | list[str]) -> str:
    """What identifies an instance set in MLflow: its files' names and contents."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def choose_metric(paths: tuple[str, ...] | list[str], time_limit: float) -> tuple[str, str]:
    """The tuning metric for a template's shape, and why: one solve of each instance file
    with the CP-SAT defaults at the trial time limit (solver seed 0). When every one is proven,
    targets are optima and time to target is the sharper metric; when some are not, time to an
    unproven target jumps from seconds to PAR2 when a run misses it by one unit, and the primal
    gap integral resolves the same change with about a third of the pairs (``heldout_noise``)."""
    instances, _ = load_instances(paths)
    proven = sum(solve(problem, model="template", time_limit=time_limit, seed=0,
                       check=False).optimal for problem in instances.values())
    shape = (f"the CP-SAT defaults proved {proven} of {len(instances)} instances within "
             f"{time_limit:g} s")
    if proven == len(instances):
        return "time_to_target", f"{shape}: time to target"
    return "gap_integral", f"{shape}: the primal gap integral"


def run_trial(config: dict[str, Any], instances: dict[str, Problem], seeds: list[int], *,
              metric: str, time_limit: float,
              references: dict[tuple[str, int], Reference] | None = None,
              incumbent: dict[tuple[str, int], float] | None = None,
              cap_factor: float | None = None,
              feasible: dict[str, int] | None = None) -> Evaluation:
    """Score one configuration; a configuration that is invalid, unsound or makes the solver
    fail is a failed trial with the worst score, not an exception, so the session goes on."""
    try:
        return evaluate(SolverConfig.from_dict(config), instances, seeds, metric=metric,
                        time_limit=time_limit, references=references, incumbent=incumbent,
                        cap_factor=cap_factor, feasible=feasible)
    # What a configuration can do to a solve: make CP-SAT claim a wrong optimum or return a
    # schedule the checker refuses (unsound), be refused (InputError is a ValueError), make
    # OR-Tools fail (RuntimeError, ValueError) or exhaust memory. Our own bugs (an invalid
    # schedule under the defaults too: AssertionError; TypeError, KeyError) propagate.
    except (UnsoundClaim, UnsoundSchedule) as exc:
        return Evaluation(worst_score(metric, time_limit), failed=str(exc))
    except (RuntimeError, ValueError, MemoryError) as exc:
        return Evaluation(worst_score(metric, time_limit), failed=f"{type(exc).__name__}: {exc}")


def checked_config(space: SearchSpace, point: list[Any]) -> SolverConfig:
    """The point's configuration; InputError when it is invalid or holds a known-unsound
    combination (never solved: its optimality claims cannot be trusted)."""
    config = space.config(point)
    refuse_known_unsound(config, where=f"point {point}")
    return config


@dataclass(frozen=True)
class TrialContext:
    """What scoring a point takes from the trials told before it, as plain values: each
    pair's target (the reference's result), the incumbent's per-pair scores (the caps; None
    when the best trial failed) and the best objective known per instance (a proof above it is
    unsound). The retune DAG's ask hands it to the trial tasks, which so score a point
    without reading the session's record."""

    references: dict[tuple[str, int], Reference]
    incumbent: dict[tuple[str, int], float] | None
    feasible: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"references": [[name, seed, ref.objective, ref.proven]
                               for (name, seed), ref in self.references.items()],
                "incumbent": None if self.incumbent is None else [
                    [name, seed, score] for (name, seed), score in self.incumbent.items()],
                "feasible": self.feasible}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialContext:
        incumbent = data["incumbent"]
        return cls({(name, seed): Reference(objective, proven)
                    for name, seed, objective, proven in data["references"]},
                   None if incumbent is None else {(name, seed): score
                                                   for name, seed, score in incumbent},
                   dict(data["feasible"]))


def score_point(spec: TuningSpec, space: SearchSpace, instances: dict[str, Problem],
                point: list[Any], context: TrialContext) -> Evaluation:
    """Score a point of ``space`` on every training pair against ``context``; an invalid or
    known-unsound point is a failed trial, never solved."""
    try:
        config = checked_config(space, point)
    except InputError as exc:
        return Evaluation(worst_score(spec.metric, spec.trial_time_limit),
                          failed=f"invalid configuration: {'; '.join(exc.problems)}")
    return run_trial(config.to_dict(), instances, spec.seed_list, metric=spec.metric,
                     time_limit=spec.trial_time_limit, references=context.references,
                     incumbent=context.incumbent, cap_factor=spec.cap_factor,
                     feasible=context.feasible)


def surrogate_target(score: float) -> float:
    """What the optimiser's model sees: the log of the score. Scores are geometric means (of
    run times for the time metrics, spanning orders of magnitude with a plateau of PAR2 and
    capped runs); their log is the mean of the per-run logs, the scale on which a surrogate's
    Gaussian noise fits (SMAC's log-transformed runtimes). Floored like the geometric mean."""
    return math.log(floor_time(score))


@dataclass
class Trial:
    """One scored point (``point`` None: the reference, the CP-SAT defaults)."""

    index: int
    point: list[Any] | None
    config: SolverConfig | None  # None when the point's configuration is invalid
    evaluation: Evaluation

    @property
    def params(self) -> dict[str, Any]:
        """The trial's configuration, flat, as MLflow params and table columns."""
        if self.config is None:
            return {}
        return ({f"cp_sat.{k}": v for k, v in self.config.cp_sat.items()}
                | {f"model.{k}": v for k, v in self.config.model.to_dict().items()})


@dataclass
class TuningSession:
    """The told trials of one session, and the ask/tell seam over them."""

    spec: TuningSpec
    space: SearchSpace
    instances: dict[str, Problem]
    instance_hash: str
    trials: list[Trial] = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: TuningSpec) -> TuningSession:
        """A session with no trials yet: the spec checked, its instances and space loaded."""
        spec.check()
        instances, instance_hash = load_instances(spec.instance_paths)
        return cls(spec, load_space(spec.space_path), instances, instance_hash)

    @cached_property
    def anchor(self) -> list[Any] | None:
        """The reference's (the CP-SAT defaults') own point of the space, if it holds one
        (none for instances of mixed objectives, whose default worker counts differ)."""
        objectives = {problem.objective for problem in self.instances.values()}
        if len(objectives) != 1:
            return None
        return self.space.point_of(SolverConfig(), objectives.pop())

    @property
    def reference(self) -> Trial:
        """Trial 0: the CP-SAT defaults."""
        return self.trials[0]

    @property
    def references(self) -> dict[tuple[str, int], Reference]:
        """Per (instance, seed): what the reference found, the target of every trial."""
        return references_from(self.reference.evaluation)

    @property
    def searched(self) -> list[Trial]:
        """The trials the optimiser asked for (all but the reference)."""
        return [t for t in self.trials if t.point is not None]

    @property
    def feasible(self) -> dict[str, int]:
        """Per training instance, the best objective any trial found: a proof above it is
        unsound."""
        return feasible_objectives([t.evaluation for t in self.trials])

    @property
    def unsound_trials(self) -> dict[int, str]:
        """Every unsound trial by index, with the reason: it failed as unsound, or one of its
        proofs is beaten by a schedule a trial told after it found."""
        feasible = self.feasible  # once for all trials
        return {t.index: why for t in self.trials
                if (why := t.evaluation.failed if t.evaluation.unsound
                    else refuted_runs(t.evaluation, feasible))}

    @property
    def best(self) -> Trial:
        """The best valid, sound trial so far; the reference when nothing beat it."""
        unsound = self.unsound_trials
        return min((t for t in self.trials if t.config is not None
                    and (t.point is None or t.index not in unsound)),
                   key=lambda t: (t.evaluation.score, t.index))

    def told_before(self, index: int) -> TuningSession:
        """The session as it stood before trial ``index`` was asked (a round's replay)."""
        return TuningSession(self.spec, self.space, self.instances, self.instance_hash,
                             [t for t in self.trials if t.index < index])

    # ---- the ask/tell seam ------------------------------------------------------------------
    def optimizer(self):
        """skopt's Optimizer told every trial so far: the reference at its own point, then the
        searched points in order. Random search is its initial random phase that never ends
        (skopt's own "dummy" estimator fails on this scikit-learn). Its random stream is seeded
        by the tuner seed and the trials told, so each round draws new random points."""
        from skopt import Optimizer

        warnings.filterwarnings("ignore", category=UserWarning, module="skopt")
        spec = self.spec
        anchored = self.anchor is not None and bool(self.trials) \
            and not self.reference.evaluation.failed
        random_search = spec.estimator == "random"
        optimizer = Optimizer(
            self.space.to_skopt(), base_estimator="GP" if random_search else spec.estimator,
            n_initial_points=10**9 if random_search else min(5, spec.trials) + anchored,
            random_state=spec.tuner_seed + 7919 * len(self.searched))
        with one_blas_thread():
            if anchored:
                optimizer.tell(self.anchor, surrogate_target(self.reference.evaluation.score))
            if self.searched:
                optimizer.tell([t.point for t in self.searched],
                               [surrogate_target(t.evaluation.score) for t in self.searched])
        return optimizer

    def ask(self, n: int) -> list[list[Any]]:
        """The next ``n`` points to try (a pure function of the spec and the told trials)."""
        optimizer = self.optimizer()
        with one_blas_thread():
            points = optimizer.ask(n_points=n) if n > 1 else [optimizer.ask()]
        return [[plain_value(v) for v in p] for p in points]

    def tell(self, points: list[list[Any]], evaluations: list[Evaluation]) -> list[Trial]:
        """Record scored points as the next trials; returns them (for the caller to log)."""
        start = 1 + max((t.index for t in self.trials), default=-1)
        told = [Trial(start + i, point, self.config_or_none(point), evaluation)
                for i, (point, evaluation) in enumerate(zip(points, evaluations))]
        self.trials.extend(told)
        return told

    def tell_reference(self, evaluation: Evaluation) -> Trial:
        """The CP-SAT defaults' score: trial 0, the target every later trial is paired with."""
        if self.trials:
            raise ValueError("the reference is the first trial of a session")
        trial = Trial(0, None, SolverConfig(), evaluation)
        self.trials.append(trial)
        return trial

    # ---- scoring ----------------------------------------------------------------------------
    def config_or_none(self, point: list[Any]) -> SolverConfig | None:
        """The point's configuration, or None when the combination is invalid."""
        try:
            return self.checked_config(point)
        except InputError:
            return None

    def checked_config(self, point: list[Any]) -> SolverConfig:
        return checked_config(self.space, point)

    def score_reference(self) -> Evaluation:
        """Run the CP-SAT defaults on every pair; its results are every pair's target."""
        spec = self.spec
        return run_trial(SolverConfig().to_dict(), self.instances, spec.seed_list,
                         metric=spec.metric, time_limit=spec.trial_time_limit)

    def context(self) -> TrialContext:
        """What scoring the next point takes from the trials told so far."""
        best = self.best.evaluation
        return TrialContext(self.references, None if best.failed else per_pair(best),
                            self.feasible)

    def evaluate_point(self, point: list[Any]) -> Evaluation:
        """Score a point against the reference, capped by the best trial told so far."""
        return score_point(self.spec, self.space, self.instances, point, self.context())

    def score_runs(self, config: SolverConfig, runs: Runs,
                   references: dict[tuple[str, int], Reference] | None = None,
                   feasible: dict[str, int] | None = None) -> Evaluation:
        """Score finished runs like a trial, each pair by the median of its runs' scores: one
        timing of a short solve decides nothing. Without ``references`` these are the
        reference's runs, and a pair's first run is the target of all its runs (as a trial's
        target is the reference's first run). An unsound configuration is a failed
        evaluation with the reason."""
        spec = self.spec
        try:
            scored = []
            for (name, seed), pair_runs in runs.items():
                target = (references or {}).get((name, seed)) or Reference.of(pair_runs[0])
                scored.append(pair_score([
                    score_result(config, self.instances[name], name, seed, result,
                                 metric=spec.metric, time_limit=spec.trial_time_limit,
                                 reference=target, feasible=feasible)
                    for result in pair_runs]))
        except (UnsoundClaim, UnsoundSchedule) as exc:
            return Evaluation(worst_score(spec.metric, spec.trial_time_limit), failed=str(exc))
        return Evaluation(geometric_mean([floor_time(r.score) for r in scored]), scored)

    def race(self) -> tuple[Trial, dict[str, Any]]:
        """Re-run the best few trials and the reference on fresh seeds, paired and
        interleaved (:func:`fresh_solver.measure.measure_pairs`); the winner is the fastest
        contender with a geometric-mean gain of at least ``min_gain`` and a Wilcoxon p below
        0.1, else the reference (the CP-SAT defaults).

        Intensification (SMAC's, irace's racing): the seeds come in blocks of ``race_seeds``.
        After each block every contender is judged on all the pairs so far; the race ends
        when one is accepted, and a contender that is no faster than the defaults (gain
        below 1) leaves it. While one is ahead but not yet significant, another block of
        fresh seeds runs, up to ``race_rounds`` blocks: the repetitions go to the contenders
        still in question, not to every trial. The looks are repeated, so the race accepts
        noise more often than its nominal level; validation, whose error rate is measured,
        is the gate."""
        spec = self.spec
        if not spec.race:
            return self.best, {}
        unsound = self.unsound_trials
        # Distinct points only, and never the defaults' own point: in a small (screened)
        # space the optimiser asks a point again, and racing one set twice, or the defaults
        # against themselves, spends the race's seeds on nothing.
        anchor = self.anchor
        contenders: list[Trial] = []
        for trial in sorted((t for t in self.searched if t.config is not None
                             and not t.evaluation.failed and t.index not in unsound
                             and t.evaluation.score < self.reference.evaluation.score),
                            key=lambda t: t.evaluation.score):
            if trial.point != anchor and all(trial.point != c.point for c in contenders):
                contenders.append(trial)
        contenders = contenders[:spec.race]
        if not contenders:
            return self.reference, {"contenders": {}, "winner": self.reference.index}
        live = {t.index: t for t in contenders}
        runs: dict[str | int, Runs] = {}
        results: dict[int, dict[str, Any]] = {}
        seeds: list[int] = []
        solve_seconds, accepted = 0.0, []
        for block in range(spec.race_rounds):
            first = spec.seeds + block * spec.race_seeds
            block_seeds = list(range(first, first + spec.race_seeds))
            seeds += block_seeds
            # Interleaved, the first rotating per pair: the defaults' runs are not all taken
            # before (or after) the contenders', so a drift in the machine's speed is nobody's
            # gain; a pair of short solves is run again until it has taken a second of
            # solving, as in validation, so a 30 ms solve's one lucky timing does not decide
            # the race. The targets come from an untimed run of the defaults on other seeds: a
            # target set by the timed reference itself would favour it (it reaches its own
            # result by definition).
            configs = {"reference": SolverConfig()} | {i: t.config for i, t in live.items()}
            measured = measure_pairs(configs, self.instances, block_seeds,
                                     spec.trial_time_limit, target=SolverConfig())
            solve_seconds += sum(r.wall_time_s for by_pair in measured.values()
                                 for pair_runs in by_pair.values() for r in pair_runs)
            for name, by_pair in measured.items():
                runs.setdefault(name, {}).update(by_pair)
            judged = self.judge_contenders(live, runs)
            for index in list(live):
                if index in judged:
                    results[index] = judged[index] | {"pairs": len(runs[index]),
                                                      "blocks": block + 1}
                if judged.get(index, {}).get("gain", 0) < 1:  # failed, unsound or slower
                    del live[index]  # never the winner; the record says why
            accepted = [(r["gain"], i) for i, r in results.items() if i in live
                        and r["gain"] >= spec.min_gain and r["p_value"] < 0.1]
            if accepted or not live:
                break
        winner = self.trials[max(accepted)[1]] if accepted else self.reference
        return winner, {"contenders": results, "winner": winner.index, "seeds": seeds,
                        "solve_seconds": solve_seconds}

    def judge_contenders(self, live: dict[int, Trial], runs: dict[str | int, Runs]
                         ) -> dict[int, dict[str, Any]]:
        """Each live contender against the reference on every race pair measured so far: its
        geometric-mean gain and one-sided Wilcoxon p, or why it is unsound."""
        targets = {key: Reference.of(target_runs[0]) for key, target_runs in runs[TARGET].items()}
        reference = self.score_runs(SolverConfig(), runs["reference"], targets)
        base = per_pair(reference)
        feasible = feasible_objectives([t.evaluation for t in self.trials] + [reference])
        results: dict[int, dict[str, Any]] = {}
        for index, trial in live.items():
            evaluation = self.score_runs(trial.config, runs[index], targets, feasible)
            if evaluation.unsound:
                results[index] = {"unsound": evaluation.failed}
            if evaluation.failed or reference.failed:
                continue
            scores = per_pair(evaluation)
            keys = sorted(base)
            gain = geometric_mean([paired_speedup(base[k], scores[k]) for k in keys])
            p_value = wilcoxon_p([floor_time(base[k]) for k in keys],
                                 [floor_time(scores[k]) for k in keys])
            results[index] = {"gain": gain, "p_value": p_value}
        return results


def why_defaults_kept(race: dict[str, Any], min_gain: float) -> str:
    """Why a race returned the CP-SAT defaults, in one line with its figures."""
    measured = [r for r in race.get("contenders", {}).values() if "gain" in r]
    if not measured:
        return ("the race kept the CP-SAT defaults: no sound trial had scored better than "
                "them in the search")
    best = max(measured, key=lambda r: r["gain"])
    return (f"the race kept the CP-SAT defaults: its best contender ran {best['gain']:.2f}x "
            f"their speed on fresh seeds (Wilcoxon p = {best['p_value']:.2g}); a tuned set "
            f"needs >= {min_gain:g}x and p < 0.1")
