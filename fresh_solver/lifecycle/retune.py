"""The retune lifecycle, one function per task of the `fresh_solver_retune` DAG.

prepare → start → (evaluate × k → tell) × rounds → race → validate → register → notify

``start`` and each round's ``tell`` end by asking the next round's points (:func:`ask`) and
handing them on as trial tasks (:func:`trial_tasks`): one point per task, or several where a
trial solves for less than a task costs to start.

Every function takes and returns small JSON-able values (settings, paths, run ids, points).
The tuning session's state is its MLflow record: each task rebuilds the session from it
(``tuning.record.open_session``), so a task can be retried or run on another worker with the
same result. Idempotent by construction: ``start`` reuses the session made under the same key
(the Airflow run id), a trial index is logged once, ``race`` returns the recorded winner of a
finished session, ``validate`` the recorded validation of the session, ``register`` the
version already registered for it.

Trials may be measured on different machines (Celery workers): each trial run records its
machine's fingerprint, and ``tell``, ``race`` and ``register`` flag a session whose trials
carry more than one (:func:`flag_mixed_fingerprints`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from fresh_solver import tracking
from fresh_solver.choices import AUTO_METRIC, validation_metric
from fresh_solver.cores import usable_cores
from fresh_solver.errors import InputError
from fresh_solver.lifecycle.settings import EVERY_TEMPLATE, max_rounds, resolve
from fresh_solver.tracking import names
from fresh_solver.tuning.session import TuningSession, TuningSpec, why_defaults_kept

log = logging.getLogger("fresh_solver.lifecycle")

# The solving a trial task is given, where its round has points enough: a task on a real
# Airflow costs about 0.3 s of its own (its process, the execution API's calls, the XCom), so
# trials that solve for tenths of a second are scored several to a task.
MIN_TASK_SOLVING_S = 2.0
HELD_OUT_OFFSET = 1000  # generated held-out instance seeds start here, far from training's


# ---- prepare ------------------------------------------------------------------------------
def prepare(conf: dict[str, Any] | None, rounds_available: int | None = None) -> dict[str, Any]:
    """Check the settings and lay out the instance sets: the plan every later task reads.

    Instances come from a folder (the files that contain the template; held out are the
    ``held_out_fraction`` of them whose SHA-256 of the file name sorts first, at least one:
    a rule of the names alone, not of their order or of when files were added) or from the
    generator
    (``generator_*``: training instance seeds 0.., held-out from 1000, written once under
    ``$FRESH_SOLVER_HOME/instances``)."""
    settings = resolve(conf)
    template_id = settings["template_id"]
    if template_id == EVERY_TEMPLATE:
        raise InputError(f"params.template_id: {EVERY_TEMPLATE!r} starts one run per listed "
                         "template; a retune run needs one template")
    if settings["instances_folder"]:
        train, held_out = split_folder(Path(settings["instances_folder"]), template_id,
                                        settings["held_out_fraction"])
    else:
        train, held_out = generate_instances(template_id, settings)
    metric = settings["metric"]
    if metric == AUTO_METRIC:
        metric = _metric_for_shape(template_id, train, settings["trial_time_limit"])
    tuning = {"template_id": template_id, "instance_paths": train,
              "trials": settings["trials"], "trial_time_limit": settings["trial_time_limit"],
              "seeds": settings["seeds"], "metric": metric,
              "space_path": settings["space"] or None, "batch": settings["batch_size"],
              "estimator": settings["estimator"], "tuner_seed": settings["tuner_seed"],
              "cap_factor": settings["cap_factor"] or None, "race": settings["race"],
              "race_seeds": settings["race_seeds"], "race_rounds": settings["race_rounds"],
              "min_gain": settings["min_gain"]}
    spec = _spec({"tuning": tuning})
    spec.check()
    rounds_available = rounds_available or max_rounds()
    if spec.rounds > rounds_available:
        raise InputError(f"params.trials / params.batch_size: {spec.trials} trials in batches "
                         f"of {spec.batch} take {spec.rounds} rounds; this DAG runs at most "
                         f"{rounds_available} (raise batch_size, or FRESH_SOLVER_RETUNE_ROUNDS)")
    from fresh_solver.params.space import load_space
    from fresh_solver.tuning.session import instance_set_hash

    load_space(spec.space_path)  # a bad space file is bad input, found before any solve
    instance_set, held_out_set = instance_set_hash(train), instance_set_hash(held_out)
    validation = {"seeds": settings["validation_seeds"],
                  "time_limit": settings["validation_time_limit"],
                  "metric": validation_metric(spec.metric),
                  "rule": {k: settings[k] for k in ("min_speedup", "max_p_value",
                                                    "min_speedup_vs_production",
                                                    "quality_tolerance")}}
    warnings = []
    pairs = len(held_out) * validation["seeds"]
    if pairs < 6:
        warnings.append(f"{pairs} held-out pairs: a one-sided Wilcoxon test needs 5 pairs to "
                        "reach p < 0.05 at all and 6 to do so with one slower pair: "
                        "validation may fail on the test alone")
    from fresh_solver.lifecycle.pool import trial_pool_slots, trial_workers

    cores, workers, slots = usable_cores(), trial_workers(spec.space_path), \
        trial_pool_slots()
    if slots > 1 and workers * slots > cores:  # one trial at a time shares with nobody
        warnings.append(f"this space lets a trial run {workers} CP-SAT workers; the trial "
                        f"pool (sized for the shipped space) runs {slots} at once on {cores} "
                        "cores, so concurrent trials may share cores")
    race_pairs = len(train) * spec.race_seeds
    if spec.race and race_pairs < 4:
        warnings.append(f"{race_pairs} race pairs (training instances x race_seeds): the "
                        "race's Wilcoxon test needs 4 to reach p < 0.1, so it will keep the "
                        "CP-SAT defaults")
    for warning in warnings:
        log.warning("retune %s: %s", template_id, warning)
    plan = {"template_id": template_id, "train": train, "held_out": held_out,
            "instance_set": instance_set, "held_out_set": held_out_set, "tuning": tuning,
            "rounds": spec.rounds,
            "validation": validation, "warnings": warnings}
    log.info("retune %s: %d training and %d held-out instances (sets %s / %s), %d trials in "
             "%d rounds", template_id, len(train), len(held_out), instance_set, held_out_set,
             spec.trials, spec.rounds)
    return plan


def _metric_for_shape(template_id: str, train: list[str], time_limit: float) -> str:
    """``metric = auto``: chosen by whether the defaults prove the training instances (one
    solve each, :func:`fresh_solver.tuning.session.choose_metric`), the reason logged."""
    from fresh_solver.tuning.session import choose_metric

    metric, why = choose_metric(train, time_limit)
    log.info("retune %s: metric auto (training instances): %s", template_id, why)
    return metric


def split_folder(folder: Path, template_id: str, fraction: float) -> tuple[list, list]:
    from fresh_solver.model import load_problem

    if not folder.is_dir():
        raise InputError(f"params.instances_folder: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"params.instances_folder: {folder} holds no problem files")
    matching, seen = [], set()
    for path in files:
        problem = load_problem(path)  # a broken file is named by its InputError
        ids = set(problem.template_by_id)
        seen |= ids
        if template_id in ids:
            matching.append(path)
    if not matching:
        raise InputError(f"params.template_id: no problem file in {folder} contains template "
                         f"{template_id!r} (templates there: {', '.join(sorted(seen))})")
    if len(matching) < 2:
        raise InputError(f"params.instances_folder: only {len(matching)} file in {folder} "
                         f"contains template {template_id!r}; training and held-out sets "
                         "need at least one each")
    by_hash = sorted(matching, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    n_held = min(len(matching) - 1, max(1, round(fraction * len(matching))))
    return (sorted(str(p.resolve()) for p in by_hash[n_held:]),
            sorted(str(p.resolve()) for p in by_hash[:n_held]))


def generate_instances(template_id: str, settings: dict[str, Any]) -> tuple[list, list]:
    """Instances of the generated template of ``generator_seed``; a held-out instance that
    equals a training one (same jobs and releases) is skipped for the next seed."""
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    scale, seed = settings["generator_scale"], settings["generator_seed"]
    folder = tracking.home() / "instances" / template_id / f"{scale}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)

    def write(instance_seed: int) -> tuple[str, str]:
        problem = generate_family(scale, seed, instance_seed, template_id=template_id)
        data = problem_to_dict(problem)
        body = json.dumps({k: v for k, v in data.items() if k != "name"}, sort_keys=True)
        path = folder / f"{problem.name}.json"
        if not path.exists():  # same settings, same file: write once, atomically
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            tmp.replace(path)
        return str(path), body

    train, bodies = [], set()
    for instance_seed in range(settings["train_instances"]):
        path, body = write(instance_seed)
        train.append(path)
        bodies.add(body)
    held_out, instance_seed = [], HELD_OUT_OFFSET
    while len(held_out) < settings["held_out_instances"]:
        path, body = write(instance_seed)
        if body not in bodies:
            held_out.append(path)
            bodies.add(body)
        instance_seed += 1
    return train, held_out


def _spec(plan: dict[str, Any]) -> TuningSpec:
    tuning = dict(plan["tuning"])
    tuning["instance_paths"] = tuple(tuning["instance_paths"])
    return TuningSpec(**tuning)


# ---- the tuning session ---------------------------------------------------------------------
def start(plan: dict[str, Any], session_key: str) -> dict[str, Any]:
    """Open the tuning session (or the one already made under ``session_key``) and score the
    CP-SAT defaults as its reference; returns the session's MLflow run id and the first
    round's points (:func:`ask`)."""
    from fresh_solver.tuning.record import open_session, start_reference

    session, record = open_session(_spec(plan), session_key=session_key, reopen=False)
    record.client.set_tag(record.run_id, names.HELD_OUT_SET, plan["held_out_set"])
    start_reference(session, record)
    log.info("retune %s: tuning session %s, reference score %.4g", plan["template_id"],
             record.run_id, session.reference.evaluation.score)
    return {"run_id": record.run_id, "tasks": trial_tasks(
        ask(plan, session, 0), session.reference.evaluation.wall_time_s)}


def _open(plan: dict[str, Any], run_id: str):
    from fresh_solver.tuning.record import open_session

    return open_session(_spec(plan), resume_run_id=run_id, reopen=False)


def ask(plan: dict[str, Any], session: TuningSession, round_: int) -> list[dict[str, Any]]:
    """The round's points, each with its trial index and what scoring it takes from the
    trials told before the round (:class:`~fresh_solver.tuning.session.TrialContext`), asked
    of ``session`` as the task before the round (``start`` or the previous round's
    :func:`tell`) rebuilt it from MLflow: a replay of those trials, so a retried task asks the
    same points; points already recorded for the round (a cleared run asked again) are
    returned as recorded, and marked so. Past the trial budget: none, and the round's mapped
    trial tasks skip without starting."""
    spec = _spec(plan)
    n = spec.round_size(round_)
    if n == 0:
        return []
    first = spec.first_index(round_)
    before = session.told_before(first)
    missing = sorted(set(range(first)) - {t.index for t in before.trials})
    if missing:
        raise RuntimeError(f"round {round_}: trials {missing} of earlier rounds are not "
                           "recorded; their tell task has not succeeded")
    recorded = {t.index: t.point for t in session.trials if first <= t.index < first + n}
    points = [recorded[i] for i in range(first, first + n)] if len(recorded) == n else [
        recorded.get(first + i, point) for i, point in enumerate(before.ask(n))]
    context = before.context().to_json()
    log.info("retune %s: round %d asks %d point(s)", plan["template_id"], round_, n)
    return [{"index": first + i, "point": point, "recorded": first + i in recorded,
             "context": context} for i, point in enumerate(points)]


def trial_tasks(items: list, reference_solving_s: float) -> list[list]:
    """The round's points as trial tasks (what the round's trial task maps over): each task
    gets as many points as make about :data:`MIN_TASK_SOLVING_S` of solving, at least one,
    judged by the reference's solving seconds (a trial's are of their order); so a task per
    point where trials solve for seconds, one task for a round of short trials. Contiguous, in
    order, as even as the count allows; a function of the recorded reference, so a retried
    task hands on the same tasks."""
    if not items:
        return []
    solving = max(reference_solving_s, 1e-3)
    per_task = max(1, min(len(items), int(MIN_TASK_SOLVING_S / solving)))
    count = -(-len(items) // per_task)
    return [items[len(items) * k // count:len(items) * (k + 1) // count] for k in range(count)]


def evaluate(plan: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score a trial task's asked points, each on every training instance × seed, for
    :func:`tell` to record.

    No MLflow here: the ask handed over what scoring takes, so a trial task (a new process
    on a real Airflow) pays only for the solver's import before solving, not MLflow's 4-5 s.
    A point already recorded when asked (a cleared run) is not solved again. A process's
    one-time costs fall on its first solve, so on the task's first point; where solves are
    short enough for points to share a task, a pair is solved several times and scored by the
    median (``scoring.pair_score``), which that one slow solve barely moves."""
    from fresh_solver.fingerprint import fingerprint_id
    from fresh_solver.params.space import load_space
    from fresh_solver.tuning.session import TrialContext, load_instances, score_point

    spec = _spec(plan)
    results, instances, space = [], None, None
    for item in items:
        if item["recorded"]:
            results.append({"index": item["index"], "point": item["point"], "recorded": True})
            continue
        if instances is None:
            instances, space = load_instances(spec.instance_paths)[0], load_space(
                spec.space_path)
        evaluation = score_point(spec, space, instances, item["point"],
                                 TrialContext.from_json(item["context"]))
        results.append({"index": item["index"], "point": item["point"],
                        "fingerprint": fingerprint_id(), "evaluation": evaluation.to_dict()})
    return results


def tell(plan: dict[str, Any], run_id: str, round_: int,
         results: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Record the round's trials (``results``: what each of its trial tasks returned), each as
    its nested run (once: a retried tell finds the runs it logged), log the best score so far
    as the session's progress, and ask the next round's points of the session now in memory
    (``tasks``, as :func:`trial_tasks`; none past the budget). Asking here, not in a task of
    its own, saves each round a process that would import MLflow and read the session back."""
    from fresh_solver.tuning.scoring import Evaluation
    from fresh_solver.tuning.session import Trial

    spec = _spec(plan)
    n = spec.round_size(round_)
    if n == 0:
        return {"round": round_, "told": 0, "tasks": []}
    results = [result for task in results for result in task]
    session, record = _open(plan, run_id)
    first = spec.first_index(round_)
    unexpected = [r["index"] for r in results if not first <= r["index"] < first + n]
    if unexpected:
        raise RuntimeError(f"round {round_}: results for trials {unexpected} do not belong "
                           "to it")
    recorded = {t.index: t for t in session.trials}
    for result in sorted(results, key=lambda r: r["index"]):
        index, point = result["index"], result["point"]
        if index in recorded:
            if recorded[index].point != point:
                raise RuntimeError(f"trial {index} is recorded with point "
                                   f"{recorded[index].point}, not {point}")
            continue
        if result.get("recorded"):
            raise RuntimeError(f"trial {index} was recorded when asked but is not now")
        trial = Trial(index, point, session.config_or_none(point),
                      Evaluation.from_dict(result["evaluation"]))
        record.log_trial(trial, session.space, fingerprint=result["fingerprint"])
        recorded[index] = trial
        session.trials.append(trial)
    missing = [i for i in range(first, first + n) if i not in recorded]
    if missing:
        raise RuntimeError(f"round {round_}: trials {missing} not recorded")
    best = session.told_before(first + n).best
    record.client.log_metric(run_id, "best_score_so_far", best.evaluation.score,
                             step=first + n - 1)
    flag_mixed_fingerprints(plan, record, f"round {round_}")
    log.info("retune %s: round %d told, best score %.4g (trial %d)", plan["template_id"],
             round_, best.evaluation.score, best.index)
    return {"round": round_, "told": n, "best_score": best.evaluation.score,
            "best_trial": best.index,
            "tasks": trial_tasks(ask(plan, session, round_ + 1),
                                 session.reference.evaluation.wall_time_s)}


def race(plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Race the best trials against the defaults on fresh seeds and close the session. A
    session already closed returns what it recorded."""
    client = tracking.client()
    run = tracking.get_run(client, run_id)
    if names.BEST_TRIAL not in run.data.tags:  # not raced yet (finish sets it last)
        spec = _spec(plan)
        session, record = _open(plan, run_id)
        if len(session.searched) < spec.trials:
            raise RuntimeError(f"the session has {len(session.searched)} of {spec.trials} "
                               "trials recorded")
        flag_mixed_fingerprints(plan, record, "race")
        winner, race_result = session.race()
        record.finish(session, winner, race_result)
        run = client.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    tuned = tags[names.BEST_TRIAL] != "0"
    why = None if tuned else why_not_tuned(plan, run_id, client)
    log.info("retune %s: race %s (best trial %s, score %.4g vs defaults %.4g)",
             plan["template_id"], "kept a tuned set" if tuned else "kept the CP-SAT defaults",
             tags[names.BEST_TRIAL], metrics["best_score"], metrics["default_score"])
    return {"run_id": run_id, "tuned": tuned, "best_trial": int(tags[names.BEST_TRIAL]),
            "config_hash": tags[names.BEST_CONFIG_HASH],
            "best_score": metrics["best_score"], "default_score": metrics["default_score"],
            "why_defaults_kept": why}


def why_not_tuned(plan: dict[str, Any], run_id: str, client) -> str:
    """Why a finished session returned the CP-SAT defaults, in one line: the race's best
    contender and what it lacked (``race.json``), or, without a race, that no trial beat them."""
    from fresh_solver.tuning.record import read_json

    if not plan["tuning"]["race"]:
        return ("the search kept the CP-SAT defaults: no trial scored better than them, so "
                "there is nothing to validate")
    return why_defaults_kept(read_json(client, run_id, "race.json"),
                             plan["tuning"]["min_gain"])


def flag_mixed_fingerprints(plan: dict[str, Any], record, stage: str) -> list[str]:
    """Flag a session whose trials were measured on more than one machine: a warning in the
    task log (which trials ran where) and the fingerprint ids, comma-separated, in the parent
    run's tag ``fresh_solver.mixed_fingerprints``; returns the ids, sorted.

    It flags rather than refuses. Mixed machines bias only the *search*: trial scores are
    times relative to a reference measured elsewhere, so the optimiser (and the race's choice
    of contenders) may prefer a point that merely ran on a faster machine. The evidence that
    decides what is registered is measured on one machine in one task, paired against the
    defaults on the same instances and seeds: the race re-runs its contenders and the
    defaults side by side, and validation does the same on held-out instances. A biased
    search can only make the run less effective, not let an unproven set through; refusing
    would throw away a sound validation. (For the search's sake, give one stack's trial
    workers alike machines: docs/distributed.md.)"""
    machines = record.fingerprints()
    if len(machines) > 1:
        listed = "; ".join(f"{fp}: trials {', '.join(map(str, trials))}"
                           for fp, trials in sorted(machines.items()))
        log.warning("retune %s: %s: the trials were measured on %d machines (%s): their "
                    "scores compare times across machines; the race and validation re-measure "
                    "on one machine each", plan["template_id"], stage, len(machines), listed)
        record.client.set_tag(record.run_id, names.MIXED_FINGERPRINTS, ",".join(sorted(machines)))
    return sorted(machines)


# ---- validation, registration, notification -----------------------------------------------
def validate(plan: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """The race's winner against the CP-SAT defaults (and the current Production set) on the
    held-out instances; the verdict, or the verdict already recorded for this session."""
    from fresh_solver.registry.registry import ParameterRegistry
    from fresh_solver.tuning.record import read_json

    template_id, run_id = plan["template_id"], candidate["run_id"]
    if not candidate["tuned"]:
        return {"validated": False, "passed": False, "validation_run_id": None,
                "reasons": [candidate["why_defaults_kept"]]}
    registry = ParameterRegistry()
    experiment = registry.client.get_experiment_by_name(
        tracking.validation_experiment(template_id))
    done = [] if experiment is None else registry.client.search_runs(
        [experiment.experiment_id],
        filter_string=names.runs_where({names.TUNING_RUN_ID: run_id,
                                        names.CONFIG_HASH: candidate["config_hash"]},
                                       finished=True), max_results=1)
    if done:
        report = read_json(registry.client, done[0].info.run_id, "validation_report.json")
    else:
        report = _run_validation(plan, run_id, registry)
    verdict = verdict_of(report)
    registry.client.set_tag(run_id, names.VALIDATION_RUN_ID, report["run_id"])
    log.info("retune %s: validation %s: %s", template_id,
             "PASSED" if report["passed"] else "FAILED", report["summary"])
    return verdict


def _run_validation(plan: dict[str, Any], run_id: str, registry) -> dict[str, Any]:
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.tuning.record import read_json
    from fresh_solver.validation.compare import PassRule
    from fresh_solver.validation.validator import validate as validate_candidate

    template_id, settings = plan["template_id"], plan["validation"]
    candidate = SolverConfig.from_dict(read_json(registry.client, run_id, "parameters.json"))
    serving = registry.serving(template_id).version
    production = registry.load_config(template_id, serving) if serving else None
    report = validate_candidate(
        template_id, candidate, tuple(plan["held_out"]), list(range(settings["seeds"])),
        settings["time_limit"], PassRule(**settings["rule"]), production,
        tags={names.TUNING_RUN_ID: run_id}, metric=settings["metric"],
        log=lambda message: log.info("retune %s: validation: %s", template_id, message))
    return report.to_dict()


def verdict_of(report: dict[str, Any]) -> dict[str, Any]:
    """The verdict's essentials (what tasks pass on and people read) from a validation
    report: pass/fail and why, the speedup vs the defaults with its per-pair range and p."""
    defaults = report["comparisons"][0]
    speedups = [p["speedup"] for p in defaults["pairs"]]
    return {"validated": True, "passed": report["passed"], "reasons": report["reasons"],
            "validation_run_id": report["run_id"], "speedup_factor": report["speedup_factor"],
            "p_value": defaults["p_value"], "pairs": len(speedups),
            "speedup_min": min(speedups), "speedup_max": max(speedups),
            "candidate_hash": report["candidate_hash"], "summary": report["summary"]}


def register(plan: dict[str, Any], run_id: str, verdict: dict[str, Any]) -> dict[str, Any]:
    """A passing candidate becomes a new Staging version linked to its tuning and validation
    runs (the version already registered for this session, on a retry); a failed one: none."""
    from fresh_solver.params.config import SolverConfig
    from fresh_solver.registry.registry import ParameterRegistry, model_name
    from fresh_solver.tuning.record import read_json

    template_id = plan["template_id"]
    if not verdict["passed"]:
        log.info("retune %s: nothing registered (%s)", template_id, "; ".join(verdict["reasons"]))
        return {"version": None, "model": model_name(template_id)}
    registry = ParameterRegistry()
    existing = [v for v in registry.versions(template_id)
                if v.tags.get("tuning_run_id") == run_id]
    serving = registry.serving(template_id).version
    if existing:
        version = str(existing[0].version)
        if existing[0].current_stage == "None":  # the first attempt died before staging it
            registry.to_staging(template_id, version)
    elif serving and registry.version(template_id, serving).tags.get("config_hash") == \
            verdict["candidate_hash"]:
        log.info("retune %s: the candidate is the set Production serves (v%s); nothing new "
                 "to register", template_id, serving)
        return {"version": None, "model": model_name(template_id), "same_as": serving}
    else:
        report = read_json(registry.client, verdict["validation_run_id"],
                           "validation_report.json")
        version = registry.register(template_id, SolverConfig.from_dict(report["candidate"]),
                                    report, tuning_run_id=run_id)
    for linked in (run_id, verdict["validation_run_id"]):
        registry.client.set_tag(linked, names.REGISTERED_VERSION,
                                f"{model_name(template_id)}/{version}")
    mixed = registry.client.get_run(run_id).data.tags.get(names.MIXED_FINGERPRINTS)
    if mixed:  # set by tell/race: the reviewer sees it on the version
        log.warning("retune %s: version %s was tuned on trials measured on several machines "
                    "(%s); its validation ran on one", template_id, version, mixed)
        registry.client.set_model_version_tag(model_name(template_id), version,
                                              "mixed_fingerprints", mixed)
    log.info("retune %s: registered %s version %s in Staging", template_id,
             model_name(template_id), version)
    return {"version": version, "model": model_name(template_id)}


def notify(plan: dict[str, Any], candidate: dict[str, Any], verdict: dict[str, Any],
           registered: dict[str, Any]) -> dict[str, Any]:
    """Tell reviewers what the run produced and how to promote it: a log line and a message
    through the alert channels (once per tuning run and outcome, however often retried)."""
    template_id, model = plan["template_id"], registered["model"]
    lines = [f"fresh-solver retune of template {template_id!r}: tuning run "
             f"{candidate['run_id']} (experiment {tracking.tuning_experiment(template_id)})."]
    if registered["version"]:
        version = registered["version"]
        lines += [
            f"{model} version {version} is in Staging: {verdict['speedup_factor']:.2f}x "
            f"geomean time to target vs the CP-SAT defaults over {verdict['pairs']} held-out "
            f"pairs (per pair {verdict['speedup_min']:.2f}x-{verdict['speedup_max']:.2f}x), "
            f"Wilcoxon p = {verdict['p_value']:.3g}; validation run "
            f"{verdict['validation_run_id']}.",
            f"Promote it: fresh-solver registry promote {template_id} {version} "
            "--approved-by YOUR_NAME",
            f"or in the MLflow UI, {_ui_hint(f'/models/{model}/versions/{version}')}: "
            "Aliases > add 'production' (or, with the classic UI, Stage > Transition to "
            "Production).",
        ]
    elif registered.get("same_as"):
        lines.append(f"Nothing registered: the tuned set is the one {model} v"
                     f"{registered['same_as']} already serves in Production.")
    else:
        lines.append("Nothing registered: " + "; ".join(verdict["reasons"]) + ".")
    message = "\n".join(lines)
    log.info("%s", message)
    from fresh_solver.operations.alerts import AlertManager

    AlertManager().notify(
        "retune_result", lines[1] if len(lines) > 1 else lines[0], template_id=template_id,
        details={"message": message, "version": registered["version"],
                 "tuning_run_id": candidate["run_id"], "passed": verdict["passed"]},
        key=f"{candidate['run_id']}:{registered['version']}")
    return {"message": message, **registered, "passed": verdict["passed"]}


def _ui_hint(page: str) -> str:
    """Where a reviewer finds ``page``: its link on a server, else how to open the embedded
    store."""
    uri = tracking.tracking_uri()
    if uri.startswith("http"):
        return tracking.ui_link(uri, page)
    return (f"after `make up` (which serves this store, {uri}) at "
            f"{tracking.ui_link('http://127.0.0.1:5000', page)}")


def task_failed(dag_id: str, task_id: str, run_id: str, error: str) -> str:
    """What a failed task tells operators: a log line and an alert through the channels (once
    per task and run). An alert that cannot be queued (store down, bad config) is logged: the
    failure callback must not fail itself."""
    from sqlalchemy.exc import SQLAlchemyError

    from fresh_solver.operations.alerts import AlertManager

    message = f"fresh-solver: task {dag_id}.{task_id} failed in run {run_id}: {error}"
    log.error("%s", message)
    try:
        AlertManager().notify("task_failed", message, severity="warning",
                              details={"dag_id": dag_id, "task_id": task_id, "run_id": run_id,
                                       "error": error[:2000]},
                              key=f"{dag_id}.{task_id}.{run_id}")
    except (SQLAlchemyError, OSError, InputError) as exc:
        log.error("the failure alert could not be queued: %s", exc)
    return message
