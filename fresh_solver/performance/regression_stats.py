"""Is a configuration slower than before? The regression decision, pure (no MLflow): what
:class:`~fresh_solver.performance.regression.RegressionDetector` decides on stored baselines
and what the daily benchmark DAG decides on Production relative to the defaults.

**The decision, per instance**: the current times are slower than the baseline's when

- a one-sided Mann-Whitney U test (current stochastically greater) gives a p-value that stays
  at or below ``alpha`` (default 0.05) after a Holm adjustment across the instances compared
  (family-wise: an A/A comparison raises an alarm on any instance at most ``alpha`` of the time;
  ``correction="bh"`` for Benjamini-Hochberg), **and**
- the ratio of medians (current / baseline) is at least ``threshold`` (default **1.2**, i.e.
  20 % slower): on a shared machine a significant 5 % is real but not worth an alarm.

Against a single-number baseline no test is possible: the threshold alone decides and the result
says ``evidence="single_number"`` (``weak_evidence`` true, ``p_value`` None).

Severity, from the ratio of medians of a regressed instance: ``minor`` from the threshold,
``major`` from 1.5x, ``critical`` from 2x (never below the threshold): monotone in the effect.
The result's severity is its worst instance's; ``none`` without a regression.

**Relative to a reference measured beside it** (:func:`compare_relative`, the daily DAG's
form): the times compared are, per (instance, seed, repetition), the candidate's time over the
reference's in the same benchmark run, so a machine that is slower today for every solve does
not look like a regression.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from fresh_solver.measure import (
    adjust_p_values,
    floor_time,
    geometric_mean,
    mann_whitney_slower_p,
    median_ratio_ci,
)

DEFAULT_THRESHOLD = 1.2
DEFAULT_ALPHA = 0.05
SEVERITIES = ("none", "minor", "major", "critical")
MAJOR_RATIO = 1.5
CRITICAL_RATIO = 2.0


@dataclass(frozen=True)
class InstanceComparison:
    """One instance's verdict. ``ratio`` = current median / baseline median (> 1 slower)."""

    instance: str
    n_baseline: int
    n_current: int
    baseline_median: float
    current_median: float
    ratio: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    regression: bool
    severity: str


def severity_of(ratio: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The severity a slow-down by ``ratio`` (current / baseline) earns (module docstring)."""
    if ratio >= max(CRITICAL_RATIO, threshold):
        return "critical"
    if ratio >= max(MAJOR_RATIO, threshold):
        return "major"
    return "minor" if ratio >= threshold else "none"


def compare_instances(baseline: dict[str, list[float]], current: dict[str, list[float]], *,
            threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
            correction: str = "holm", n_resamples: int = 2000,
            single_number: bool = False) -> list[InstanceComparison]:
    """The per-instance verdicts on the instances both sides have (module docstring).

    ``n_resamples`` = 0 skips the bootstrap interval (it is reported, it does not decide):
    the detector's power benchmark calls this thousands of times. ``single_number``: the
    baseline is one number, so the threshold alone decides and there are no p-values.
    """
    instances = [name for name in baseline if name in current]
    ratios, intervals, p_values = [], [], []
    for name in instances:
        base, cur = baseline[name], current[name]
        if n_resamples and not single_number:
            ratio, low, high = median_ratio_ci(base, cur, n_resamples=n_resamples)
            intervals.append((low, high))
        else:
            ratio = median(cur) / floor_time(median(base))
            intervals.append((None, None))
        ratios.append(ratio)
        p_values.append(None if single_number else mann_whitney_slower_p(base, cur))
    adjusted = (adjust_p_values(p_values, correction) if not single_number
                else [None] * len(instances))
    rows = []
    for name, ratio, (low, high), p, p_adj in zip(instances, ratios, intervals, p_values,
                                                  adjusted):
        slower = ratio >= threshold and (p_adj is None or p_adj <= alpha)
        rows.append(InstanceComparison(
            instance=name, n_baseline=len(baseline[name]), n_current=len(current[name]),
            baseline_median=median(baseline[name]), current_median=median(current[name]),
            ratio=ratio, ci_low=low, ci_high=high, p_value=p, p_adjusted=p_adj,
            regression=slower, severity=severity_of(ratio, threshold) if slower else "none"))
    return rows


@dataclass(frozen=True)
class Overall:
    """The per-instance verdicts rolled up: ``effect`` is the geometric mean of the ratios
    (current / baseline), ``p_value`` the smallest adjusted one (None without a test), the
    severity the worst regressed instance's."""

    effect: float
    regressed: list[InstanceComparison]
    p_value: float | None
    severity: str


def overall(rows: list[InstanceComparison]) -> Overall:
    """:class:`Overall` of :func:`compare_instances`' rows (at least one)."""
    regressed = [r for r in rows if r.regression]
    adjusted = [r.p_adjusted for r in rows if r.p_adjusted is not None]
    return Overall(geometric_mean([r.ratio for r in rows]), regressed,
                   min(adjusted) if adjusted else None,
                   max((r.severity for r in regressed), key=SEVERITIES.index, default="none"))


def change_points(series: list[float], *, penalty: float | None = None,
                  min_size: int = 2) -> list[int]:
    """Where the level of a history of times changes: the indices at which a new regime
    starts (index ``i`` = the ``i``-th run is the first of the new level), in order.

    PELT (``ruptures``, least-squares cost) on the log of the times, so a 1.5x step counts the
    same at 0.1 s as at 10 s. The default penalty is ``5 * sigma^2 * log(n)``, sigma the noise
    of the log-times estimated from successive differences (median absolute deviation, so the
    steps themselves barely count), floored at 1 %. The factor 5 trades false alarms on a
    flat history against missed steps; ``python -m benchmarks.detector_power``
    measures both on series built from measured solve times.
    """
    import numpy as np
    import ruptures

    x = np.log(np.maximum(np.asarray(series, float), 1e-4))
    n = len(x)
    if n < 2 * min_size:
        return []
    if penalty is None:
        diffs = np.diff(x)
        sigma = float(np.median(np.abs(diffs - np.median(diffs)))) / 0.6745 / math.sqrt(2)
        penalty = 5 * max(sigma, 0.01) ** 2 * math.log(n)
    breaks = ruptures.Pelt(model="l2", min_size=min_size, jump=1).fit(x).predict(pen=penalty)
    return [int(b) for b in breaks[:-1]]


def relative_ratios(runs, candidate: str, reference: str) -> dict[str, list[float]]:
    """Per instance, the ratio ``candidate`` / ``reference`` of each (instance, seed,
    repetition) pair's time to target (both floored like every time of the project), from a
    benchmark's ``runs.csv`` frame."""
    pairs: dict[tuple, dict[str, float]] = {}
    for row in runs.itertuples(index=False):
        pairs.setdefault((str(row.instance), row.seed, row.repetition), {})[
            str(row.configuration)] = float(row.time_to_target_s)
    out: dict[str, list[float]] = {}
    for (instance, _, _), times in pairs.items():
        if candidate in times and reference in times:
            out.setdefault(instance, []).append(
                floor_time(times[candidate]) / floor_time(times[reference]))
    return out


def median_change(before, now, configuration: str) -> float | None:
    """Geometric mean over instances of this configuration's median time now / before."""
    changes = []
    for instance, group in now[now.configuration == configuration].groupby("instance"):
        old = before[(before.configuration == configuration) & (before.instance == instance)]
        if not old.empty:
            changes.append(floor_time(median(group.time_to_target_s))
                           / floor_time(median(old.time_to_target_s)))
    return geometric_mean(changes) if changes else None


def compare_relative(before, now, *, candidate: str, reference: str, threshold: float,
                     alpha: float, labels: tuple[str, str] | None = None) -> dict[str, Any]:
    """The verdict fields of ``now`` against ``before`` (two benchmark ``runs.csv`` frames):
    per instance :func:`compare_instances` on the ``candidate`` / ``reference`` ratios
    (:func:`relative_ratios`); ``performance_change`` is the geometric mean over instances of
    (median ratio now / median ratio before) less one. ``absolute_change`` (the candidate's
    own times) and ``machine_drift`` (the reference's own times) are for reading only: both
    carry the machine's load. ``labels``: how the message names the candidate and the
    reference (their configuration names by default)."""
    named, reference_named = labels or (candidate, reference)
    base = relative_ratios(before, candidate, reference)
    current = relative_ratios(now, candidate, reference)
    rows = compare_instances(base, current, threshold=threshold, alpha=alpha)
    if not rows:
        return {"status": "not_compared", "rows": [], "message": (
            f"not compared: no instance in common with the baseline run (baseline "
            f"{sorted(base)}, now {sorted(current)})")}
    verdict = overall(rows)
    regressed, severity, change = verdict.regressed, verdict.severity, verdict.effect - 1
    drift = median_change(before, now, reference)
    absolute = median_change(before, now, candidate)
    status = "regression" if regressed else "no_regression"
    message = (f"{'REGRESSION (' + severity + ')' if regressed else 'no regression'}: "
               f"{named} relative to {reference_named} {change:+.1%} vs the baseline run "
               f"(p = {verdict.p_value:.3g} after Holm over {len(rows)} instance(s))"
               + (f", slower on {', '.join(r.instance for r in regressed)}" if regressed
                  else "")
               + (f"; machine drift ({_possessive(reference_named)} own times) "
                  f"{drift - 1:+.1%}, {_possessive(named)} absolute change "
                  f"{absolute - 1:+.1%}, for reading only"
                  if drift is not None and absolute is not None else ""))
    return {"status": status, "severity": severity, "performance_change": change,
            "p_value": verdict.p_value, "regressed": [r.instance for r in regressed],
            "rows": [asdict(r) for r in rows],
            "machine_drift": None if drift is None else drift - 1,
            "absolute_change": None if absolute is None else absolute - 1, "message": message}


def _possessive(label: str) -> str:
    return f"{label}'" if label.endswith("s") else f"{label}'s"
