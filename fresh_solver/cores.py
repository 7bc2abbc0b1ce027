"""The cores this process may use: one definition for the worker policy, the trial pool, the
machine fingerprint and the warnings about oversubscription (a light module: the DAG files'
parse path reaches it)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's ``cpuset``), cut to
    its cgroup v2 CPU quota rounded down, at least 1 (a container's ``cpus: 2.5`` runs 2
    trials' worth of CP-SAT workers, not the host's count)."""
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    return cores if quota is None else max(1, min(cores, int(quota)))


@functools.lru_cache(maxsize=4)
def cgroup_cpu_quota(root: Path = CGROUP_ROOT,
                     membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota (``cpu.max``: quota / period, in cores) of this process's cgroup v2 and
    its ancestors, the tightest; None without cgroup v2 or without a quota. Read once per
    process: a quota that changes under a running process is not worth a read per solve."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    quotas = []
    folder = root / path.strip().lstrip("/")
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(quotas) if quotas else None
