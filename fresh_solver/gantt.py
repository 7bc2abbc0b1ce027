"""A Gantt chart of a schedule as a PNG: one row per machine, one colour per template."""

from __future__ import annotations

from pathlib import Path

from fresh_solver.model import Problem, Schedule


def write_gantt(problem: Problem, schedule: Schedule, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    rows = {m.id: i for i, m in enumerate(problem.machines)}
    template_of_job = {j.id: j.template for j in problem.jobs}
    colours = plt.get_cmap("tab10")
    template_colour = {t.id: colours(i % 10) for i, t in enumerate(problem.templates)}
    # Machines with capacity draw overlapping tasks in stacked lanes.
    lanes: dict[str, list[int]] = {m.id: [] for m in problem.machines}
    height = max(4.0, 0.6 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    for a in sorted(schedule.assignments, key=lambda a: (a.start, a.job)):
        ends = lanes[a.machine]
        lane = next((i for i, e in enumerate(ends) if e <= a.start), len(ends))
        if lane == len(ends):
            ends.append(a.end)
        ends[lane] = a.end
        capacity = problem.machine_by_id[a.machine].capacity
        lane_height = 0.8 / capacity
        y = rows[a.machine] - 0.4 + lane * lane_height
        ax.broken_barh([(a.start, a.end - a.start)], (y, lane_height * 0.95),
                       facecolors=template_colour[template_of_job[a.job]], edgecolor="black",
                       linewidth=0.4)
        if a.end - a.start > 0:
            ax.text(a.start + (a.end - a.start) / 2, y + lane_height / 2, a.job.split("#")[-1],
                    ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.invert_yaxis()
    unit = problem.time_unit_minutes
    ax.set_xlabel(f"time (units of {unit:g} min)")
    ax.set_title(f"{problem.name}: {schedule.objective_kind} = {schedule.objective_value}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in template_colour.values()]
    ax.legend(handles, list(template_colour), loc="upper right", fontsize=7, title="template")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
