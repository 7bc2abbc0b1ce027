"""A benchmark's two pictures (PNG, matplotlib's Agg backend: files only, no display).

- ``ttt_by_jobs.png``: time to target per configuration against the job count; the line is
  the median over the runs with that job count (instances, seeds, repetitions), the band their
  min-max spread. The dashed line is PAR2: a run on it did not reach the target.
- ``scaling.png``: the scaling curve, log-log: every run's time to target against the problem's
  task count, and per configuration the least-squares line of log time on log tasks, whose
  slope (the fitted exponent, in the legend) says how time grows with size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fresh_solver.measure import TIME_FLOOR_S
from fresh_solver.performance.summary import fit_power_law

PLOTS = ("ttt_by_jobs.png", "scaling.png")


def write_plots(runs, summary: dict[str, Any], out: Path) -> list[Path]:
    """Both plots into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import ScalarFormatter

    names = summary["configurations_order"]
    runs = runs.assign(ttt=runs.time_to_target_s.clip(lower=TIME_FLOOR_S))
    paths = [out / name for name in PLOTS]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        by_jobs = runs[runs.configuration == name].groupby("jobs").ttt
        stats = by_jobs.agg(["median", "min", "max"]).sort_index()
        (line,) = ax.plot(stats.index, stats["median"], marker="o", label=name)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2,
                        color=line.get_color())
    ax.axhline(summary["par2_s"], linestyle="--", color="grey", linewidth=1,
               label="PAR2 (not reached)")
    ax.set_yscale("log")
    ax.set_xticks(sorted(runs.jobs.unique()))
    ax.set_xlabel("jobs")
    ax.set_ylabel("time to target (s, log): median, min-max band")
    ax.set_title(f"time to target vs job count (cap {summary['time_limit_s']:g} s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        own = runs[runs.configuration == name]
        fit = fit_power_law(list(own.tasks), list(own.ttt))
        points = ax.scatter(own.tasks, own.ttt, s=12, alpha=0.5)
        label = f"{name}: exponent n/a (one size)"
        if fit is not None:
            exponent, factor = fit
            xs = np.linspace(own.tasks.min(), own.tasks.max(), 50)
            ax.plot(xs, factor * xs ** exponent, color=points.get_facecolor()[0], alpha=1.0)
            label = f"{name}: time ~ tasks^{exponent:.2f}"
        points.set_label(label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("tasks (log)")
    ax.set_ylabel("time to target (s, log)")
    ax.set_title("scaling: least-squares fit on log-log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths
