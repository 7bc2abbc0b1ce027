"""A benchmark's runs summarised: per configuration, per scale, and the source document's
"Performance Targets" table filled with measured figures.

Speedups are paired: for each (instance, seed, repetition) the reference's time to target over
the configuration's (:func:`fresh_solver.measure.paired_speedup`), aggregated with the geometric
mean; the spread is min, median and max over the pairs. Times (geometric means) are floored
at :data:`fresh_solver.measure.TIME_FLOOR_S` like every other figure of the project.

Scales are counted in tasks over the whole problem. The source document names three bands,
small (5-10 tasks), medium (20-50) and large (100+); they leave gaps, so here each band is
widened to meet its neighbour at the geometric midpoint of the gap and every instance has a
scale: small up to 14 tasks, medium 15-70, large 71 and more. Tables show both ranges.
"""

from __future__ import annotations

import math
from typing import Any

from fresh_solver.measure import floor_time, geometric_mean, paired_speedup, spread

# name, the source document's band, the band counted here (inclusive upper bound)
SCALES = (("small", "5-10", 14), ("medium", "20-50", 70), ("large", "100+", math.inf))
# The source document's targets: template time, legacy time, speedup.
SEED_TARGETS = {"small": ("< 1s", "3-5s", "5-8x"), "medium": ("< 10s", "60-120s", "6-12x"),
                "large": ("< 60s", "300-600s", "5-10x")}
SOLVED = ("OPTIMAL", "FEASIBLE")
PAIR = ["instance", "seed", "repetition"]


def scale_of(tasks: int) -> str:
    """The scale an instance of ``tasks`` tasks counts in (module docstring)."""
    return next(name for name, _, upper in SCALES if tasks <= upper)


def counted_band(name: str) -> str:
    """The task range counted for a scale, e.g. ``15-70``."""
    names = [s[0] for s in SCALES]
    i = names.index(name)
    low = 1 if i == 0 else SCALES[i - 1][2] + 1
    upper = SCALES[i][2]
    return f"{low}+" if upper == math.inf else f"{low}-{upper}"


def fit_power_law(sizes: list[float], times: list[float]) -> tuple[float, float] | None:
    """(b, a) of time ~ a * size^b, by least squares of log time on log size (times floored);
    None with fewer than two distinct sizes. b is the scaling exponent."""
    import numpy as np

    if len(set(sizes)) < 2:
        return None
    logs = np.log([floor_time(t) for t in times])
    slope, intercept = np.polyfit(np.log(sizes), logs, 1)
    return float(slope), float(math.exp(intercept))


def _speedups(runs, reference: str, name: str) -> list[float]:
    """Paired speedups of ``name`` against ``reference`` (one per instance, seed, repetition)."""
    def times(config: str) -> dict[tuple, float]:
        own = runs[runs.configuration == config]
        return dict(zip(own[PAIR].itertuples(index=False, name=None), own.time_to_target_s))

    ref, own = times(reference), times(name)
    return [paired_speedup(ref[key], t) for key, t in own.items()]


def _times(runs) -> dict[str, float] | None:
    times = [floor_time(t) for t in runs["time_to_target_s"]]
    return spread(times) if times else None


def _config_block(runs, cap: float) -> dict[str, Any]:
    return {"runs": len(runs), "solved": int(runs.status.isin(SOLVED).sum()),
            "optimal": int((runs.status == "OPTIMAL").sum()),
            "reached_target": int((runs.time_to_target_s <= cap).sum()),
            "ttt_s": _times(runs)}


def summarise(runs, definition, configurations, machine: dict[str, str],
              context: dict[str, str]) -> dict[str, Any]:
    """Everything ``summary.json`` holds (see the module docstring for the figures)."""
    cap = float(definition.time_limit_seconds)
    reference = configurations[0].name
    runs = runs.assign(scale=[scale_of(t) for t in runs.tasks])
    per_config: dict[str, Any] = {}
    for c in configurations:
        own = runs[runs.configuration == c.name]
        block = _config_block(own, cap)
        speedups = _speedups(runs, reference, c.name) if c.name != reference else []
        fit = fit_power_law(list(own.tasks), list(own.time_to_target_s))
        block |= {
            "model": c.model, "params_source": c.params_source, "config_hash": c.config.hash,
            "config": c.config.to_dict(),
            "speedup_vs_reference": spread(speedups) if speedups else None,
            "scaling_exponent": (fit or (None,))[0],
            "peak_rss_mb": float(own.peak_rss_mb.max()),
            "num_workers": sorted({int(n) for n in own.num_workers}),
        }
        per_config[c.name] = block
    scales: dict[str, Any] = {}
    for name, _, _ in SCALES:
        in_scale = runs[runs.scale == name]
        blocks = {}
        for c in configurations:
            own = in_scale[in_scale.configuration == c.name]
            if own.empty:
                continue
            speedups = _speedups(in_scale, reference, c.name) if c.name != reference else []
            blocks[c.name] = _config_block(own, cap) | {
                "speedup_vs_reference": spread(speedups) if speedups else None}
        scales[name] = {"tasks": counted_band(name), "instances": int(in_scale.instance.nunique()),
                        "configurations": blocks}
    last = configurations[-1].name
    return {
        "definition": definition.to_dict(),
        "reference": reference,
        "configurations_order": [c.name for c in configurations],
        "time_limit_s": cap, "par2_s": 2 * cap,
        "machine": machine, **context,
        "instances": [{"instance": i, "jobs": int(g.jobs.iloc[0]), "tasks": int(g.tasks.iloc[0]),
                       "scale": g.scale.iloc[0]}
                      for i, g in runs.groupby("instance", sort=False)],
        "configurations": per_config,
        "scales": scales,
        "performance_targets": performance_targets(runs, cap),
        "per_instance": {i: {c: float(g[g.configuration == c].time_to_target_s.median())
                             for c in per_config}
                         for i, g in runs.groupby("instance", sort=False)},
        "average_speedup": (per_config[last]["speedup_vs_reference"] or {}).get("geomean")
        if last != reference else None,
    }


def performance_targets(runs, cap: float) -> list[dict[str, Any]]:
    """The source document's table per scale: template (``template``) and legacy
    (``baseline``) geometric-mean time to target, their paired speedup, and the targets;
    figures are None where the scale has no instance or a configuration is missing."""
    rows = []
    for name, seed_band, _ in SCALES:
        in_scale = runs[runs.scale == name]
        template = in_scale[in_scale.configuration == "template"]
        legacy = in_scale[in_scale.configuration == "baseline"]
        measured = not template.empty and not legacy.empty
        target_template, target_legacy, target_speedup = SEED_TARGETS[name]
        speedups = _speedups(in_scale, "baseline", "template") if measured else []
        rows.append({
            "scale": name, "seed_tasks": seed_band, "counted_tasks": counted_band(name),
            "instances": int(in_scale.instance.nunique()),
            "template_ttt_s": geometric_mean([floor_time(t) for t in template.time_to_target_s])
            if measured else None,
            "legacy_ttt_s": geometric_mean([floor_time(t) for t in legacy.time_to_target_s])
            if measured else None,
            "speedup": spread(speedups) if speedups else None,
            "template_reached": int((template.time_to_target_s <= cap).sum()),
            "legacy_reached": int((legacy.time_to_target_s <= cap).sum()),
            "runs": len(template) if measured else 0,
            "target_template": target_template, "target_legacy": target_legacy,
            "target_speedup": target_speedup,
        })
    return rows


def _s(value: float | None, unit: str = "s", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g} {unit}".rstrip()


def _speedup_cell(s: dict[str, float] | None) -> str:
    if not s:
        return "n/a"
    return f"{s['geomean']:.2f}x [{s['min']:.2f}-{s['max']:.2f}], n={s['n']}"


def report_markdown(summary: dict[str, Any]) -> str:
    """``report.md``: the context, per configuration, per scale, the targets table, and the
    median time to target per instance."""
    d = summary["definition"]
    ref = summary["reference"]
    m = summary["machine"]
    lines = ["# Benchmark: " + (d.get("template_id") or "problem files"), "",
             f"Reference (sets the targets): `{ref}`; cap {summary['time_limit_s']:g} s "
             f"(PAR2 {summary['par2_s']:g} s); seeds {d['seeds']}; repetitions "
             f"{d['repetitions']}  ",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}, "
             f"OR-Tools {summary['ortools_version']} (fingerprint `{summary['fingerprint']}`)  ",
             f"Files: `{summary.get('out', '')}`", "",
             "| configuration | model | params | workers | runs | solved | reached target "
             "| time to target, geomean [min-max] | speedup vs reference | scaling exponent |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in summary["configurations"].items():
        t = c["ttt_s"]
        times = f"{t['geomean']:.3g} s [{t['min']:.3g}-{t['max']:.3g}]" if t else "n/a"
        exponent = "n/a" if c["scaling_exponent"] is None else f"{c['scaling_exponent']:.2f}"
        speedup = "reference" if name == ref else _speedup_cell(c["speedup_vs_reference"])
        lines.append(f"| {name} | {c['model']} | {c['params_source']} | "
                     f"{','.join(map(str, c['num_workers']))} | {c['runs']} | {c['solved']} | "
                     f"{c['reached_target']} | {times} | {speedup} | {exponent} |")
    lines += ["", "Per scale (tasks counted over the whole problem), speedup vs reference:", "",
              "| scale | tasks | instances | " + " | ".join(summary["configurations"]) + " |",
              "|---|---|---|" + "---|" * len(summary["configurations"])]
    for name, s in summary["scales"].items():
        cells = [("reference" if c == ref else _speedup_cell(
                      s["configurations"][c]["speedup_vs_reference"]))
                 if c in s["configurations"] else "n/a" for c in summary["configurations"]]
        lines.append(f"| {name} | {s['tasks']} | {s['instances']} | " + " | ".join(cells) + " |")
    lines += ["", "Performance Targets (the source document's table; measured: geometric-mean "
              "time to target, template = `template`, legacy = `baseline`; target in "
              "parentheses):", "",
              "| Dataset Scale | Template Performance | Legacy Performance | Speedup "
              "[min-max] | Target Speedup | reached (template/legacy) |",
              "|---|---|---|---|---|---|"]
    for r in summary["performance_targets"]:
        reached = f"{r['template_reached']}/{r['legacy_reached']} of {r['runs']}" \
            if r["runs"] else "n/a"
        lines.append(
            f"| {r['scale'].capitalize()} ({r['seed_tasks']} tasks; counted {r['counted_tasks']}) "
            f"| {_s(r['template_ttt_s'])} ({r['target_template']}) "
            f"| {_s(r['legacy_ttt_s'])} ({r['target_legacy']}) "
            f"| {_speedup_cell(r['speedup'])} | {r['target_speedup']} | {reached} |")
    names = list(summary["configurations"])
    lines += ["", "Median time to target per instance (s):", "",
              "| instance | jobs | tasks | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for inst in summary["instances"]:
        medians = summary["per_instance"][inst["instance"]]
        lines.append(f"| {inst['instance']} | {inst['jobs']} | {inst['tasks']} | "
                     + " | ".join(f"{medians[n]:.3g}" for n in names) + " |")
    return "\n".join(lines) + "\n"
