"""Does tuning pay off on instances it never saw? And does it beat random search and a peer?

    python -m benchmarks.tuning_benchmark --out out/tuning_benchmark
    make peers-venv && python -m benchmarks.tuning_benchmark --trials 48 \
        --autotune .venv-peers/bin/python --out out/tuning_peers

The default template, large-18, was picked by ``template_screen`` as one where the defaults
are weak (tuning cannot beat defaults that are already fast: on medium-12 it found nothing).

One template (a generated identical-job family) gives a training set and a held-out set of
instances (same template, other instance seeds). For each tuner seed, a GP session and a
random-search session with the same budget tune on the training set; then every tuned
configuration and the CP-SAT defaults (the reference) run on the held-out instances with the
same solver seeds, paired: time to target of the reference's results (DESIGN §8), speedup =
reference time / tuned time, geometric mean over pairs. The budget is reported in CPU-seconds
(process CPU time of the tuning sessions, CP-SAT's threads included). ``--metric
gap_integral`` tunes and scores by the primal gap integral instead, which is far less
heavy-tailed on instances whose optimum the time limit does not always prove. A set several
sessions returned is measured once. The reference is the median of ``--reference-runs`` runs
of the defaults per pair (one run would move every row's speedup and p-value together with
its luck); the defaults are measured again ``--controls`` times as if they were tuned sets,
and those controls are the noise floor. From these runs of the defaults the report also
estimates the comparison's own A/A error rate (:func:`aa_rate`). ``--estimators``, ``--race``
and ``--race-rounds`` set the methods compared and each session's race; the report shows every
session's race (contenders' gain and p on the fresh race pairs). ``--space`` tunes over another
search space, e.g. the one ``template_screen --write-space`` narrowed on the same training
instances (instance seeds from 0; the held-out ones, from 1000, are never screened).

With ``--autotune PYTHON`` (the peer environment's interpreter), each tuner seed also runs
cpsat-autotune (:mod:`autotune_peer`) on the same training models, for as many CPU-seconds as
that seed's GP session took, and its set joins the held-out comparison. Every pair of methods
is then compared with the tuner seed as the unit (wins / ties / losses on the held-out score,
one-sided Wilcoxon signed-rank over the seeds' scores) and over all held-out runs pooled
across tuner seeds; ``--from-results`` redoes that summary from a finished run's file.

MLflow runs go to ``<out>/home`` (its own SQLite store) unless MLFLOW_TRACKING_URI is set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.record import rerun_command, write_results
from fresh_solver.errors import InputError
from fresh_solver.fingerprint import machine_fingerprint
from fresh_solver.measure import (
    TARGET,
    Runs,
    best_objectives,
    floor_time,
    gap_integral,
    geometric_mean,
    measure_pairs,
    paired_speedup,
    spread,
    target_of,
    wilcoxon_p,
)
from fresh_solver.model import problem_to_dict
from fresh_solver.model.generate import SCALES, generate_family
from fresh_solver.params.config import SolverConfig
from fresh_solver.params.space import load_space
from fresh_solver.params.workers import effective_workers
from fresh_solver.solver.solve import build_model
from fresh_solver.validation.compare import timed

PEER_DRIVER = Path(__file__).with_name("autotune_peer.py")
# A held-out gain (or loss) counts when its one-sided Wilcoxon p is below this.
SIGNIFICANT = 0.05
# The defaults measured again under these names (-1, -2, ...): the noise floor.
CONTROL = "defaults-control"
# The defaults' runs whose per-pair median is the reference (-2, -3, ... after the first).
REFERENCE = "defaults"
# Random deals of the defaults' runs that estimate the comparison's A/A error rate.
AA_DRAWS = 2000
HELD_OUT_METRICS = ("time_to_target", "gap_integral")


def write_instances(folder: Path, scale: str, template_seed: int, first_seed: int, count: int,
                    seen: set[str]) -> list[str]:
    """``count`` instances of the template, none equal to one in ``seen`` (so held-out
    instances never repeat a training one)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    seed = first_seed
    while len(paths) < count:
        problem = generate_family(scale, template_seed, instance_seed=seed)
        seed += 1
        body = problem_to_dict(problem) | {"name": ""}
        key = json.dumps(body, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        path = folder / f"{problem.name}.json"
        path.write_text(json.dumps(problem_to_dict(problem)))
        paths.append(str(path))
    return paths


def held_out_speedups(configs: dict[str, SolverConfig], paths: list[str], seeds: list[int],
                      limit: float, log, metric: str = "time_to_target",
                      reference_runs: int = 3) -> dict[str, Any]:
    """Each configuration against the defaults on the held-out pairs, measured as validation
    measures (interleaved, the first rotating) to targets an untimed run of the defaults on
    other seeds sets (a target set by the timed defaults themselves favours them where it is
    not proven). Scored by ``metric``: time to target, or the primal gap integral against the
    best objective any run found on the instance (:func:`held_out_scores`).

    The reference is the median of ``reference_runs`` runs of the defaults per pair (under
    :data:`REFERENCE` names, interleaved like any set): every row is compared with the same
    reference, so one lucky or unlucky run of it would move every row together and make the
    rows' p-values agree on its luck (a control once scored 1.20x, p = 0.016, against one run).

    A configuration is measured once however many sessions returned it: a session that
    returned the defaults *is* the defaults (speedup 1, ``same_as``); the controls
    (:data:`CONTROL` names) are the defaults measured again as if they were tuned sets, the
    protocol's noise floor."""
    from fresh_solver.tuning.session import load_instances

    instances, _ = load_instances(tuple(paths))
    references = [REFERENCE] + [f"{REFERENCE}-{i}" for i in range(2, reference_runs + 1)]
    measured: dict[str, SolverConfig] = {name: SolverConfig() for name in references}
    same_as: dict[str, str] = {}
    for name, config in configs.items():
        if not name.startswith(CONTROL):  # a set equal to the defaults finds REFERENCE first
            same_as[name] = next((other for other, seen in measured.items()
                                  if seen.hash == config.hash), name)
        if same_as.get(name, name) == name:
            measured[name] = config
    runs = measure_pairs(measured, instances, seeds, limit, target=SolverConfig(),
                         progress=lambda done, total: log(f"  held-out pair {done}/{total} "
                                                          f"({len(measured)} sets)"))
    scores = held_out_scores(runs, metric, limit)
    repeats = {name: scores.pop(name) for name in references}
    keys = sorted(repeats[REFERENCE])
    base = {k: median(repeats[name][k] for name in references) for k in keys}
    unit = "s" if metric == "time_to_target" else "gap-s"
    out: dict[str, Any] = {"reference": {
        "score": geometric_mean([base[k] for k in keys]), "runs": _pair_rows(base, None),
        "repeats": {name: _pair_rows(repeats[name], runs[name]) for name in references}}}
    for name in configs:
        source = same_as.get(name, name)
        if source == REFERENCE:
            out[name] = {"same_as": "defaults", "score": out["reference"]["score"],
                         "speedup": spread([1.0] * len(keys)), "p_faster": 1.0,
                         "p_slower": 1.0, "runs": out["reference"]["runs"]}
            continue
        cand = scores[source]
        out[name] = {"score": geometric_mean([cand[k] for k in keys]),
                     "speedup": spread([paired_speedup(base[k], cand[k]) for k in keys]),
                     "p_faster": wilcoxon_p([base[k] for k in keys], [cand[k] for k in keys]),
                     "p_slower": wilcoxon_p([cand[k] for k in keys], [base[k] for k in keys]),
                     "runs": _pair_rows(cand, runs[source])}
        if source != name:
            out[name]["same_as"] = source
        log(f"  held-out {name}: score {out[name]['score']:.4g} {unit} vs defaults "
            f"{out['reference']['score']:.4g} {unit} -> geomean speedup "
            f"{out[name]['speedup']['geomean']:.2f}x")
    return out


def held_out_scores(runs: dict[str, Runs], metric: str,
                    limit: float) -> dict[str, dict[tuple[str, int], float]]:
    """Per measured configuration and (instance, seed) pair, the median score of its runs
    (floored). ``time_to_target``: to the pair's untimed target run (:data:`TARGET`), PAR2
    when not reached. ``gap_integral``: the primal gap integral over the time limit against
    the best objective any run (the targets' included) found on the instance, which ranks
    every configuration by one yardstick and, unlike time to an unproven target, does not
    jump from seconds to PAR2 when a run misses the target by one unit."""
    targets = runs.pop(TARGET)
    best = best_objectives([targets, *runs.values()])

    def score(r, key) -> float:
        if metric == "gap_integral":
            return limit if key[0] not in best else gap_integral(r, best[key[0]], limit)
        return timed(r, target_of(targets[key][0], limit), limit)

    return {name: {key: floor_time(median(score(r, key) for r in pair_runs))
                   for key, pair_runs in by_pair.items()}
            for name, by_pair in runs.items()}


def _pair_rows(scores: dict[tuple[str, int], float],
               runs: Runs | None) -> list[dict[str, Any]]:
    """Per pair its score and (with ``runs``) the objective of its first run."""
    return [{"instance": key[0], "seed": key[1], "score": scores[key]}
            | ({"objective": runs[key][0].objective} if runs is not None else {})
            for key in sorted(scores)]


def export_models(paths: list[str], folder: Path) -> tuple[list[Path], int]:
    """The template models (default switches) of ``paths`` as text protos, for the peer, and
    the worker count the project's solve would give them with CP-SAT defaults."""
    from fresh_solver.tuning.session import load_instances

    folder.mkdir(parents=True, exist_ok=True)
    instances, _ = load_instances(tuple(paths))
    files = []
    for name, problem in instances.items():
        files.append(folder / f"{name}.txt")
        build_model(problem).model.export_to_file(str(files[-1]))
    first = next(iter(instances.values()))
    return files, effective_workers({}, "template", first.objective)


def run_autotune(python: str, models: list[Path], cpu_budget: float, tuner_seed: int,
                 num_workers: int, trial_time_limit: float, folder: Path) -> dict[str, Any]:
    """One cpsat-autotune session in the peer environment; its result file, read back."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"autotune-seed{tuner_seed}.json"
    command = [python, str(PEER_DRIVER), "--models", *map(str, models),
               "--cpu-budget", str(cpu_budget), "--seed", str(tuner_seed),
               "--num-workers", str(num_workers), "--trial-time-limit", str(trial_time_limit),
               "--out", str(out)]
    with open(folder / f"autotune-seed{tuner_seed}.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=log, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cpsat-autotune failed (exit {done.returncode}); see {log.name}")
    return json.loads(out.read_text())


def compare_methods(sessions: list[dict[str, Any]], held: dict[str, Any],
                    hashes: dict[str, str]) -> list[dict[str, Any]]:
    """Each pair of tuning methods on the held-out set, the tuner seed being the unit: per seed
    a win is a lower held-out score and a tie the same configuration returned (their scores then
    differ by noise only); over seeds, a one-sided Wilcoxon p on the seeds' held-out scores.
    Pooled over every held-out run of every seed: the geometric-mean speedup and its Wilcoxon p
    (runs of one seed share a configuration, so this one overstates the evidence). ``hashes``:
    each session's configuration hash."""
    methods = list(dict.fromkeys(s["estimator"] for s in sessions))
    seeds = sorted({s["tuner_seed"] for s in sessions})
    rows = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            wins = ties = 0
            a_scores, b_scores, a_times, b_times = [], [], [], []
            for seed in seeds:
                name_a, name_b = f"{a}-seed{seed}", f"{b}-seed{seed}"
                same = hashes[name_a] == hashes[name_b]
                ties += same
                wins += not same and held[name_a]["score"] < held[name_b]["score"]
                a_scores.append(held[name_a]["score"])
                b_scores.append(held[name_b]["score"])
                b_runs = {(r["instance"], r["seed"]): r["score"] for r in held[name_b]["runs"]}
                for r in held[name_a]["runs"]:
                    a_times.append(r["score"])
                    b_times.append(b_runs[(r["instance"], r["seed"])])
            rows.append({"first": a, "second": b, "wins": wins, "ties": ties,
                         "losses": len(seeds) - wins - ties,
                         "p_seeds_first_faster": wilcoxon_p(b_scores, a_scores),
                         "p_seeds_second_faster": wilcoxon_p(a_scores, b_scores),
                         "pooled_geomean_speedup": geometric_mean(
                             [paired_speedup(bt, at) for at, bt in zip(a_times, b_times)]),
                         "p_pooled_first_faster": wilcoxon_p(b_times, a_times),
                         "p_pooled_second_faster": wilcoxon_p(a_times, b_times)})
    return rows


def noise_floor(held: dict[str, Any]) -> dict[str, Any] | None:
    """The held-out speedups of the controls (the defaults measured again as if tuned): what
    the protocol reports for no change at all."""
    controls = [name for name in held if name.startswith(CONTROL)]
    values = [held[name]["speedup"]["geomean"] for name in controls]
    return {"sets": controls, "min": min(values), "max": max(values)} if values else None


def aa_rate(held: dict[str, Any], draws: int = AA_DRAWS, seed: int = 0) -> dict[str, Any] | None:
    """The A/A error rate of this very comparison, from its own runs of the defaults (the
    reference's repeats and the controls): per draw, each pair's runs are dealt at random
    into a reference (the median of as many runs as the reference has) and one candidate,
    and the candidate is judged as a tuned set is. Under "nothing changed" the runs of a pair
    are exchangeable, so the share of draws judged a significant gain (or loss) is the rate
    at which this protocol calls noise a result, on this machine and these instances. None
    without a control or repeats (a result file from before)."""
    repeats = held["reference"].get("repeats", {})
    controls = [held[n] for n in held if n.startswith(CONTROL) and "same_as" not in held[n]]
    if not repeats or not controls:
        return None
    by_run = [{(r["instance"], r["seed"]): r["score"] for r in rows}
              for rows in [*repeats.values(), *(control["runs"] for control in controls)]]
    keys, k = sorted(by_run[0]), len(repeats)
    rng = random.Random(seed)
    speedups, gains, losses = [], 0, 0
    for _ in range(draws):
        base, cand = [], []
        for key in keys:
            dealt = rng.sample(by_run, k + 1)
            base.append(median(run[key] for run in dealt[:k]))
            cand.append(dealt[k][key])
        speedup = geometric_mean([paired_speedup(b, c) for b, c in zip(base, cand)])
        speedups.append(speedup)
        gains += speedup > 1 and wilcoxon_p(base, cand) < SIGNIFICANT
        losses += speedup < 1 and wilcoxon_p(cand, base) < SIGNIFICANT
    speedups.sort()
    return {"defaults_runs": len(by_run), "reference_runs": k, "draws": draws,
            "false_gain_rate": gains / draws, "false_loss_rate": losses / draws,
            "speedup_low": speedups[int(0.025 * draws)],
            "speedup_high": speedups[int(0.975 * draws) - 1]}


def race_cell(session: dict[str, Any]) -> str:
    """The race of a session in a table cell: each contender's gain, p and race pairs, the
    winner marked; "-" for a session without one (a peer's, or a result file from before)."""
    race = session.get("race") or {}
    cells = []
    for index, r in race.get("contenders", {}).items():
        if "gain" in r:
            mark = "**" if str(index) == str(race.get("winner")) else ""
            cells.append(f"{mark}{r['gain']:.2f}x p {r['p_value']:.2g} "
                         f"({r.get('pairs', '?')}){mark}")
    return "; ".join(cells) or "-"


def report_markdown(data: dict[str, Any]) -> str:
    """The sessions and their held-out speedups, the noise floor, the method comparisons."""
    held, sessions = data["held_out_results"], data["sessions"]
    lines = ["| session | train score (defaults) | held-out speedup vs defaults (geomean, "
             "min-max) | p faster / slower | num_workers | CPU-s | race: gain, p, pairs |",
             "|---|---|---|---|---|---|---|"]
    controls = [{"name": name} for name in held if name.startswith(CONTROL)]
    for s in sessions + controls:
        result = held[s["name"]]
        h = result["speedup"]
        if "same_as" in result:
            lines.append(f"| {s['name']} | {s['train_best']:.3g} ({s['train_default']:.3g}) | "
                         f"= {result['same_as']} (measured once) | - | - | "
                         f"{s.get('cpu_seconds', '-')} | {race_cell(s)} |")
            continue
        workers = s.get("best_params", {"cp_sat": {}})["cp_sat"].get("num_workers", "default")
        train = (f"{s['train_best']:.3g} ({s['train_default']:.3g})" if "train_best" in s
                 else "-")
        p = (f"{result['p_faster']:.3g} / {result['p_slower']:.3g}" if "p_faster" in result
             else "-")
        lines.append(f"| {s['name']} | {train} | {h['geomean']:.2f}x ({h['min']:.2f}-"
                     f"{h['max']:.2f}) | {p} | {workers} | {s.get('cpu_seconds', '-')} | "
                     f"{race_cell(s)} |")
    for verdict in data.get("verdicts", []):
        lines.append(f"\n{verdict['method']}: {verdict['gains']} of {verdict['sessions']} "
                     f"sessions returned a set with a significant held-out gain, "
                     f"{verdict['losses']} one with a significant loss (one-sided Wilcoxon "
                     f"over the held-out pairs, p < {SIGNIFICANT})")
    metric = data.get("args", {}).get("metric", "time_to_target").replace("_", " ")
    lines.append(f"\nScores are each method's own: the project's geometric mean of {metric} "
                 "(held-out too), cpsat-autotune's mean time to a proven optimum (PAR10).")
    noise = data["noise_floor"]
    if noise:
        lines.append(f"\nNoise floor: the defaults measured again as if tuned "
                     f"({', '.join(noise['sets'])}) scored {noise['min']:.2f}-{noise['max']:.2f}x "
                     "on the held-out set.")
    aa = data.get("aa")
    if aa:
        lines.append(f"\nA/A: the {aa['defaults_runs']} runs of the defaults per pair dealt "
                     f"{aa['draws']} times into a reference (median of {aa['reference_runs']}) "
                     f"and a candidate: {aa['false_gain_rate']:.1%} of deals judged a "
                     f"significant gain, {aa['false_loss_rate']:.1%} a significant loss, "
                     f"speedups {aa['speedup_low']:.2f}-{aa['speedup_high']:.2f}x (95 %).")
    lines += ["", f"Held-out, over {len(data['tuner_seeds'])} tuner seeds (a tie: both returned "
              "the same configuration; p: one-sided Wilcoxon over the seeds' held-out scores) "
              "and pooled over every held-out run of every seed:", "",
              "| first vs second | wins / ties / losses | p first / second faster (seeds) | "
              "pooled speedup of first (geomean) | p first / second faster (pooled) |",
              "|---|---|---|---|---|"]
    for c in data["comparisons"]:
        lines.append(f"| {c['first']} vs {c['second']} | {c['wins']} / {c['ties']} / "
                     f"{c['losses']} | {c['p_seeds_first_faster']:.3g} / "
                     f"{c['p_seeds_second_faster']:.3g} | {c['pooled_geomean_speedup']:.2f}x | "
                     f"{c['p_pooled_first_faster']:.3g} / {c['p_pooled_second_faster']:.3g} |")
    return "\n".join(lines) + "\n"


def verdicts(sessions: list[dict[str, Any]], held: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method, how many sessions returned a set significantly faster (a gain that holds)
    or significantly slower (a loss) than the defaults on the held-out pairs."""
    rows = []
    for method in dict.fromkeys(s["estimator"] for s in sessions):
        results = [held[s["name"]] for s in sessions if s["estimator"] == method]
        if not all("p_faster" in r for r in results):
            continue
        rows.append({"method": method, "sessions": len(results),
                     "gains": sum(r["p_faster"] < SIGNIFICANT and r["speedup"]["geomean"] > 1
                                  for r in results),
                     "losses": sum(r["p_slower"] < SIGNIFICANT and r["speedup"]["geomean"] < 1
                                   for r in results)})
    return rows


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its comparisons, verdicts and noise floor (re)computed from its sessions
    and runs."""
    sessions, held = data["sessions"], data["held_out_results"]
    hashes = {s["name"]: SolverConfig.from_dict(s["best_params"]).hash for s in sessions}
    return data | {"tuner_seeds": sorted({s["tuner_seed"] for s in sessions}),
                   "comparisons": compare_methods(sessions, held, hashes),
                   "verdicts": verdicts(sessions, held),
                   "noise_floor": noise_floor(held), "aa": aa_rate(held)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="large")
    parser.add_argument("--template-seed", type=int, default=18)
    parser.add_argument("--train", type=int, default=3, help="training instances")
    parser.add_argument("--held-out", type=int, default=6, help="held-out instances")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--trial-time-limit", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, default=1, help="solver seeds while tuning")
    parser.add_argument("--eval-seeds", type=int, default=2, help="solver seeds held out")
    parser.add_argument("--eval-time-limit", type=float, default=15.0)
    parser.add_argument("--metric", choices=HELD_OUT_METRICS, default="time_to_target",
                        help="what the sessions tune and the held-out pairs are scored by")
    parser.add_argument("--reference-runs", type=int, default=3,
                        help="runs of the defaults per held-out pair; their median is the "
                             "reference every set is compared with")
    parser.add_argument("--controls", type=int, default=2,
                        help="times the defaults are measured again as if tuned (noise floor)")
    parser.add_argument("--tuner-seeds", type=int, default=5)
    parser.add_argument("--estimators", default="GP,random",
                        help="comma-separated tuning methods to compare (GP, RF, ET, random)")
    parser.add_argument("--space", metavar="NAME|FILE",
                        help="the sessions' search space (default: the shipped default; e.g. "
                             "one template_screen --write-space narrowed on the training set)")
    parser.add_argument("--race", type=int, default=2, help="best trials raced (0: off)")
    parser.add_argument("--race-rounds", type=int, default=1,
                        help="blocks of fresh seeds an undecided race may take")
    parser.add_argument("--autotune", metavar="PYTHON",
                        help="the peer environment's python (make peers-venv: "
                             ".venv-peers/bin/python): also run cpsat-autotune")
    parser.add_argument("--from-results", type=Path, metavar="RESULTS_JSON",
                        help="no solving: summarise an earlier run's results.json into --out")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.reference_runs < 1 or args.controls < 0:
        parser.error("--reference-runs must be >= 1 and --controls >= 0")
    if args.space:
        try:
            load_space(args.space)
        except InputError as exc:
            parser.error(f"--space: {exc}")
    if args.autotune and not Path(args.autotune).is_file():
        parser.error(f"--autotune: no interpreter at {args.autotune} (run make peers-venv)")
    if args.from_results:
        try:
            data = summarise(json.loads(args.from_results.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--from-results: {args.from_results} is not a tuning benchmark's "
                         f"results.json ({exc!r})")
        data["summarised_by"] = rerun_command(__spec__.name, argv)
        args.out.mkdir(parents=True, exist_ok=True)
        write_results(args.out, data, report_markdown(data))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FRESH_SOLVER_HOME", str((args.out / "home").resolve()))
    from fresh_solver.tuning.tuner import TuningSpec, tune

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    seen: set[str] = set()
    train = write_instances(args.out / "train", args.scale, args.template_seed, 0, args.train,
                            seen)
    held_out = write_instances(args.out / "held_out", args.scale, args.template_seed, 1000,
                               args.held_out, seen)
    template_id = f"bench-{args.scale}-{args.template_seed}-{int(time.time())}"
    if args.autotune:
        models, peer_workers = export_models(train, args.out / "train_models")
    sessions: list[dict[str, Any]] = []
    for tuner_seed in range(args.tuner_seeds):
        for estimator in args.estimators.split(","):
            spec = TuningSpec(template_id=template_id, instance_paths=tuple(train),
                              trials=args.trials, trial_time_limit=args.trial_time_limit,
                              seeds=args.seeds, estimator=estimator, tuner_seed=tuner_seed,
                              metric=args.metric, race=args.race,
                              race_rounds=args.race_rounds, space_path=args.space)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            summary = tune(spec)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            name = f"{estimator}-seed{tuner_seed}"
            sessions.append({"name": name, "estimator": estimator, "tuner_seed": tuner_seed,
                             "run_id": summary["run_id"], "train_best": summary["best_score"],
                             "train_default": summary["default_score"],
                             "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                             "best_params": summary["best_params"], "race": summary["race"]})
            log(f"{name}: train score {summary['best_score']:.4g} (defaults "
                f"{summary['default_score']:.4g}), {cpu:.0f} CPU-s, {wall:.0f} s")
        if args.autotune:
            budget = next(s["cpu_seconds"] for s in sessions if s["name"] == f"GP-seed{tuner_seed}")
            peer = run_autotune(args.autotune, models, budget, tuner_seed, peer_workers,
                                args.trial_time_limit, args.out / "autotune")
            name = f"autotune-seed{tuner_seed}"
            sessions.append({"name": name, "estimator": "autotune", "tuner_seed": tuner_seed,
                             "run_id": None, "train_best": peer["best_score"],
                             "train_default": peer["default_score"],
                             "cpu_seconds": peer["cpu_seconds"],
                             "wall_seconds": peer["wall_seconds"], "trials": peer["trials"],
                             "best_params": SolverConfig.from_dict(
                                 {"cp_sat": peer["cp_sat"]}).to_dict()})
            log(f"{name}: train score {peer['best_score']:.4g} s to optimum (defaults "
                f"{peer['default_score']:.4g}), {peer['trials']} trials, "
                f"{peer['cpu_seconds']:.0f} CPU-s of {budget:.0f}")
    log("held-out evaluation:")
    # The defaults again, scored like a tuned set: the noise floor of the comparison.
    configs = {s["name"]: SolverConfig.from_dict(s["best_params"]) for s in sessions}
    configs |= {f"{CONTROL}-{i}": SolverConfig() for i in range(1, args.controls + 1)}
    held = held_out_speedups(configs, held_out, list(range(args.eval_seeds)),
                             args.eval_time_limit, log, args.metric, args.reference_runs)
    data = summarise({"command": rerun_command(__spec__.name, argv),
                      "machine": machine_fingerprint(),
                      "args": {k: str(v) for k, v in vars(args).items()},
                      "train": [Path(p).name for p in train],
                      "held_out": [Path(p).name for p in held_out], "sessions": sessions,
                      "held_out_results": held})
    write_results(args.out, data, report_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
