"""The cores this process may use: one definition for the worker policy, the trial pool, the
machine fingerprint and the warnings about oversubscription (a light module: the DAG files'
parse path reaches it)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))
