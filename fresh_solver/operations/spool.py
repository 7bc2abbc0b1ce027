"""Records a process could not write to the operations store before it exited, kept on its
own disk and written by the next process that reaches the store: in order, exactly once.

A spool file (``$FRESH_SOLVER_HOME/spool/<store>/<ns>-<pid>-<nonce>.jsonl``, one
``{"table", "row"}`` per line) appears whole (written to a temporary name, then renamed). The
writer that delivers it inserts its rows and its name in the ``spooled`` ledger in one
transaction, then deletes the file: a file whose name is in the ledger is only deleted, so a
process that dies between the commit and the delete, or two processes delivering the same
file at once (the second fails on the ledger's key), never write a record twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

Rows = list[tuple[str, dict[str, Any]]]


def folder(url: str) -> Path:
    """The spool folder of the store ``url`` (one per store: a file is only ever written to
    the store it was meant for)."""
    from fresh_solver import tracking

    return tracking.home() / "spool" / hashlib.sha256(url.encode()).hexdigest()[:16]


def keep(url: str, rows: Rows) -> Path:
    """Write ``rows`` (oldest first) to a new spool file; OSError when the folder cannot be
    written (the caller reports the loss)."""
    spool = folder(url)
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        for table, row in rows:
            out.write(json.dumps({"table": table, "row": row}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return path


def waiting(url: str) -> list[Path]:
    """The store's spool files, oldest first."""
    spool = folder(url)
    return sorted(spool.glob("*.jsonl")) if spool.is_dir() else []


def read(path: Path) -> Rows:
    """A spool file's rows; ValueError when it does not parse."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if not isinstance(item, dict) or item.get("table") not in ("solves", "events") \
                or not isinstance(item.get("row"), dict):
            raise ValueError(f"not a spooled record: {line[:100]}")
        rows.append((item["table"], item["row"]))
    return rows


def state(url: str) -> dict[str, Any]:
    """What waits in the store's spool folder, and whether the folder can take more (for
    health: a folder that cannot be written would turn the next outage's records into a
    loss)."""
    spool, files = folder(url), waiting(url)
    rows = 0
    for path in files:
        try:
            rows += sum(1 for _ in path.open(encoding="utf-8"))
        except OSError:
            continue
    problem = None
    try:
        spool.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"{spool}: {exc.strerror or exc}"
    return {"spool_files": len(files), "spool_records": rows, "spool_problem": problem}
