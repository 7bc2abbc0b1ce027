"""PerformanceMonitor: every production solve recorded in the operations store, and the
health of the recent window computed from it.

Recording never slows or fails a solve. :meth:`PerformanceMonitor.record` appends to an
in-memory buffer and returns; one writer thread per process and store writes batches. When the
store is down or slow, records stay buffered (at most ``FRESH_SOLVER_MONITOR_BUFFER``, default
10,000) and are written when it is back; beyond that the oldest are dropped, counted, said in a
log line, and the count is written to the store as a ``dropped`` event once it answers again.
At exit the buffer gets ``FRESH_SOLVER_MONITOR_FLUSH_S`` (default 2 s) to reach the store; what
is still buffered then is kept on disk (:mod:`fresh_solver.operations.spool`) and written by the
next process that reaches the store, in order and exactly once. A loss (the spool folder not
writable, or a write to a hung store still open at exit) is said on stderr.

The health formula (one, used by the monitor, the checks, the CLI and the endpoint)::

    score = 100 · (1 − error_rate) · (1 − 0.2 · fallback_rate)
                · (1 − 0.5 · min(1, (slowdown − 1)⁺ / 2))

over the solves of the last ``window_minutes`` (default 60): ``error_rate`` is the share of
solves that ended without an answer (status other than OPTIMAL, FEASIBLE, INFEASIBLE),
``fallback_rate`` the share served with fallback parameters, ``slowdown`` the largest ratio
of a template's median solve time to its validated ``performance_baseline_s`` (1 when no
baseline is given). Status: ``healthy`` ≥ 95, ``warning`` ≥ 75, ``critical`` below, ``unknown``
when the window holds no solve. So 5 % errors alone is still healthy, 26 % is critical; serving
only fallback parameters is a warning; a template 2x slower than validated is a warning (75),
3x is critical (50). Production instances are not the validation's, so the slowdown is a hint,
weighted to need a large gap.
"""

from __future__ import annotations

import atexit
import logging
import os
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from fresh_solver.measure import percentile
from fresh_solver.operations import store

log = logging.getLogger("fresh_solver.monitor")

ANSWERED = ("OPTIMAL", "FEASIBLE", "INFEASIBLE")  # statuses that are not errors
HEALTHY_FROM, WARNING_FROM = 95.0, 75.0


class HealthStatus(StrEnum):
    """The source document's status words, used everywhere."""

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


def health_score(error_rate: float, fallback_rate: float, slowdown: float = 1.0) -> float:
    """The one health formula (see the module docstring), 0–100."""
    slow_penalty = 0.5 * min(1.0, max(0.0, slowdown - 1.0) / 2)
    return 100.0 * (1 - error_rate) * (1 - 0.2 * fallback_rate) * (1 - slow_penalty)


def status_of(score: float | None) -> HealthStatus:
    """The status word of a score (None: nothing to judge)."""
    if score is None:
        return HealthStatus.UNKNOWN
    if score >= HEALTHY_FROM:
        return HealthStatus.HEALTHY
    return HealthStatus.WARNING if score >= WARNING_FROM else HealthStatus.CRITICAL


@dataclass(frozen=True)
class SolveRecord:
    """One production solve, as stored."""

    template_id: str
    status: str
    solve_time_s: float
    params_source: str = "defaults"
    version: str | None = None
    jobs: int | None = None
    tasks: int | None = None
    objective: int | None = None
    best_bound: float | None = None
    build_time_s: float | None = None
    peak_rss_mb: float | None = None
    fallback: bool = False
    host: str = ""
    ortools_version: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TemplateHealth:
    """One template's figures over the window."""

    solves: int
    errors: int
    fallbacks: int
    median_solve_s: float
    p95_solve_s: float
    baseline_s: float | None
    versions: tuple[str, ...]

    @property
    def slowdown(self) -> float | None:
        """Median solve time over the validated baseline (None without a baseline)."""
        if not self.baseline_s:
            return None
        return self.median_solve_s / self.baseline_s


@dataclass(frozen=True)
class HealthSnapshot:
    """What :meth:`PerformanceMonitor.get_current_health` returns."""

    status: HealthStatus
    overall_health_score: float | None
    window_minutes: float
    solves: int
    error_rate: float
    fallback_rate: float
    refusals: int
    slowdown: float
    templates: dict[str, TemplateHealth]
    computed_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (status as its word)."""
        data = asdict(self)
        data["status"] = self.status.value
        return data


class _Unwritten(Exception):
    """The store failed part-way through a row-by-row write: ``rows`` are still to write."""

    def __init__(self, rows: list[tuple[str, dict[str, Any]]], cause: BaseException,
                 dropped: int):
        super().__init__(str(cause))
        self.rows, self.cause, self.dropped = rows, cause, dropped


class _Writer:
    """The process's buffered writer for one store URL (a daemon thread)."""

    def __init__(self, url: str):
        self.url = url
        self.capacity = int(os.environ.get("FRESH_SOLVER_MONITOR_BUFFER", "10000"))
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.dropped = 0  # since the last time the store heard about it
        self.dropped_total = 0
        self.written = 0
        self.failing_since: float | None = None
        self.in_flight = 0
        self.batch: list[tuple[str, dict[str, Any]]] = []  # the rows being written
        self.cond = threading.Condition()
        # Held while a batch is written; the exit path takes it to keep the rest on disk
        # without the thread writing them too.
        self.commit_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="fresh-solver-monitor",
                                       daemon=True)
        self.thread.start()

    def put(self, table: str, row: dict[str, Any]) -> None:
        with self.cond:
            if len(self.pending) >= self.capacity:
                self.pending.popleft()
                self.dropped += 1
                self.dropped_total += 1
                if self.dropped_total in (1, 10, 100) or self.dropped_total % 1000 == 0:
                    log.warning("operations store unreachable and the buffer is full: "
                                "%d records dropped so far", self.dropped_total)
            self.pending.append((table, row))
            self.cond.notify()

    def flush(self, timeout: float) -> bool:
        """Wait until everything buffered is written; False if the timeout came first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            self.cond.notify()
            while self.pending or self.in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
        return True

    def _run(self) -> None:
        backoff = 0.5
        while True:
            with self.cond:
                while not self.pending:
                    self.cond.wait()
                batch = list(self.pending)
                self.pending.clear()
                self.in_flight = len(batch)
                self.batch = batch
                dropped, self.dropped = self.dropped, 0
            try:
                with self.commit_lock:
                    # What earlier processes kept on disk goes first: older records first.
                    self._deliver_spool()
                    try:
                        self._write(batch, dropped)
                    except (IntegrityError, DataError):
                        # The store answered and refused a row: retrying would refuse it
                        # forever and block every later record. Row by row; refused rows are
                        # dropped.
                        dropped, batch = 0, self._write_each(batch, dropped)
            except (SQLAlchemyError, OSError, _Unwritten) as failure:
                exc = failure.cause if isinstance(failure, _Unwritten) else failure
                if isinstance(failure, _Unwritten):
                    batch, dropped = failure.rows, failure.dropped
                with self.cond:
                    # Back in front, oldest first; what no longer fits is dropped (counted).
                    room = max(0, self.capacity - len(self.pending))
                    lost = max(0, len(batch) - room)
                    self.pending.extendleft(reversed(batch[lost:]))
                    self.dropped += dropped + lost
                    self.dropped_total += lost
                    self.in_flight = 0
                    self.batch = []
                    self.cond.notify_all()
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.warning("operations store %s unreachable (%s: %s): %d records "
                                "buffered, retrying", store.safe_url(self.url),
                                type(exc).__name__, str(exc).splitlines()[0][:200],
                                len(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            with self.cond:
                self.written += len(batch)
                self.in_flight = 0
                self.batch = []
                self.cond.notify_all()
            if self.failing_since is not None:
                log.warning("operations store back after %.0f s; buffered records written",
                            time.time() - self.failing_since)
                self.failing_since = None

    def keep_on_disk(self) -> None:
        """At exit, with the store not answering: what is still buffered (the batch being
        retried included) goes to a spool file for the next process. The commit lock is taken
        and never released, so the thread cannot also write it."""
        from fresh_solver.operations import spool

        idle = self.commit_lock.acquire(timeout=0.5)
        with self.cond:
            rows = (self.batch if idle else []) + list(self.pending)
            hung = 0 if idle else self.in_flight
            if self.dropped:
                rows.append(("events", {
                    "at": time.time(), "template_id": None, "kind": "dropped",
                    "detail": f"{self.dropped} records dropped while the store was "
                              "unreachable", "host": _host()}))
            self.pending.clear()
        if hung:
            _tell(f"operations store: {hung} records were being written to a store that did "
                  "not answer at exit; they are lost unless that write completes")
        if not rows:
            return
        try:
            path = spool.keep(self.url, rows)
        except OSError as exc:
            _tell(f"operations store unreachable and the spool folder not writable "
                  f"({exc}): {len(rows)} records lost")
            return
        _tell(f"operations store unreachable: {len(rows)} records kept in {path}; the next "
              "process that reaches the store writes them")

    def _write_each(self, batch: list[tuple[str, dict[str, Any]]], dropped: int
                    ) -> list[tuple[str, dict[str, Any]]]:
        """Write rows one at a time, dropping (logged, counted) those the store refuses;
        returns the rows written. If the store fails otherwise on the way, :class:`_Unwritten`
        says which rows are still to write (nothing twice, nothing lost)."""
        written = []
        for position, item in enumerate(batch):
            try:
                self._write([item], dropped if position == 0 else 0)
                written.append(item)
            except (IntegrityError, DataError) as exc:
                with self.cond:
                    self.dropped_total += 1
                log.error("operations store refused a %s record, dropped: %s", item[0],
                          str(exc.orig)[:300])
            except (SQLAlchemyError, OSError) as exc:
                raise _Unwritten(batch[position:], exc,
                                 dropped if position == 0 else 0) from exc
        return written

    def _deliver_spool(self) -> None:
        """Write the spool files earlier processes left for this store, each with its ledger
        row, then delete it; before this writer's own batch, so older records go first. A store
        that does not answer raises, and the batch is retried as any other."""
        from fresh_solver.operations import spool

        for path in spool.waiting(self.url):
            try:
                rows = spool.read(path)
            except (OSError, ValueError) as exc:
                bad = path.with_name(path.name + ".bad")
                path.rename(bad)
                log.error("spool file %s does not parse (%s); moved to %s", path, exc, bad)
                continue
            try:
                self._write(rows, 0, ledger=(path.name, len(rows)))
                log.warning("operations store: %d records a process kept on disk written "
                            "(%s)", len(rows), path.name)
            except IntegrityError:  # in the ledger: written already (by another process)
                pass
            path.unlink(missing_ok=True)

    def _write(self, batch: list[tuple[str, dict[str, Any]]], dropped: int,
               ledger: tuple[str, int] | None = None) -> None:
        tables = {"solves": store.solves, "events": store.events}
        with store.engine(self.url).begin() as conn:
            if ledger is not None:  # first: a file already written fails here, with nothing
                conn.execute(store.spooled.insert(), [{"name": ledger[0], "rows": ledger[1],
                                                       "written_at": time.time()}])
            for name in tables:
                rows = [_fit(tables[name], row) for table, row in batch if table == name]
                if rows:
                    conn.execute(tables[name].insert(), rows)
            if dropped:
                conn.execute(store.events.insert(), [{
                    "at": time.time(), "template_id": None, "kind": "dropped",
                    "detail": f"{dropped} records dropped while the store was unreachable",
                    "host": _host()}])


def _fit(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every string cut to its column's length. PostgreSQL refuses a longer one
    (SQLite stores it), and a refused row fails its whole batch on every retry: one long
    template id would keep every later record of the process out of the store."""
    fitted = dict(row)
    for column in table.c:
        length = getattr(column.type, "length", None)
        value = fitted.get(column.name)
        if length and isinstance(value, str) and len(value) > length:
            fitted[column.name] = value[:length]
    return fitted


_writers: dict[str, _Writer] = {}
_writers_lock = threading.Lock()


def _writer(url: str) -> _Writer:
    with _writers_lock:
        writer = _writers.get(url)
        if writer is None:
            writer = _writers[url] = _Writer(url)
        return writer


@atexit.register
def _flush_at_exit() -> None:
    timeout = float(os.environ.get("FRESH_SOLVER_MONITOR_FLUSH_S", "2"))
    for writer in list(_writers.values()):
        if not writer.flush(timeout):
            writer.keep_on_disk()


def _tell(message: str) -> None:
    # At exit the caller's logging may be gone or quiet: a loss goes to stderr as well.
    log.warning("%s", message)
    print(f"fresh-solver: {message}", file=sys.stderr, flush=True)


_host_id: str | None = None


def _host() -> str:
    global _host_id
    if _host_id is None:
        from fresh_solver.fingerprint import fingerprint_id

        _host_id = fingerprint_id()
    return _host_id


def recording_enabled() -> bool:
    """Production solves are recorded unless ``FRESH_SOLVER_MONITOR=0``."""
    return os.environ.get("FRESH_SOLVER_MONITOR", "1") != "0"


class PerformanceMonitor:
    """Records production solves and events in the operations store and judges the recent
    window. Cheap to create: all monitors of a process share one writer per store."""

    def __init__(self, retention_hours: float | None = None, *, db_url: str | None = None,
                 window_minutes: float | None = None):
        from fresh_solver.operations.config import load_config

        monitor_config = load_config().monitor
        self.url = (db_url or os.environ.get("FRESH_SOLVER_DB_URL") or monitor_config.db_url
                    or store.db_url())
        self.retention_hours = float(retention_hours if retention_hours is not None
                                     else monitor_config.retention_hours)
        self.window_minutes = float(window_minutes if window_minutes is not None
                                    else monitor_config.window_minutes)

    # ---- writing ----------------------------------------------------------------------------
    def record(self, record: SolveRecord) -> None:
        """Buffer one solve for the store; returns at once, never raises for the store."""
        row = dict(vars(record))  # flat fields: no deep copy (asdict's was most of the cost)
        row["host"] = row["host"] or _host()
        _writer(self.url).put("solves", row)

    def record_event(self, kind: str, template_id: str | None, detail: str) -> None:
        """Buffer a fallback or refusal event (seen by every process reading the store)."""
        _writer(self.url).put("events", {"at": time.time(), "template_id": template_id,
                                         "kind": kind, "detail": detail, "host": _host()})

    def record_solve_performance(self, template_id: str, solve_time: float,
                                 instance_count: int | None = None,
                                 solver_status: str = "UNKNOWN",
                                 memory_usage_mb: float | None = None,
                                 **fields: Any) -> None:
        """The source document's call: ``instance_count`` is the number of jobs; further
        :class:`SolveRecord` fields may be given by name."""
        self.record(SolveRecord(template_id=template_id, status=solver_status,
                                solve_time_s=solve_time, jobs=instance_count,
                                peak_rss_mb=memory_usage_mb, **fields))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until this process's buffered records are in the store (tests, shutdown)."""
        return _writer(self.url).flush(timeout)

    def buffer_state(self) -> dict[str, int]:
        """Records waiting, dropped and written by this process (for health and metrics)."""
        writer = _writer(self.url)
        with writer.cond:
            return {"buffered": len(writer.pending) + writer.in_flight,
                    "dropped": writer.dropped_total, "written": writer.written}

    def enforce_retention(self, now: float | None = None) -> int:
        """Delete solves and events older than ``retention_hours``; returns rows deleted."""
        cutoff = (now or time.time()) - self.retention_hours * 3600
        with store.engine(self.url).begin() as conn:
            deleted = conn.execute(store.solves.delete().where(store.solves.c.at < cutoff))
            events = conn.execute(store.events.delete().where(store.events.c.at < cutoff))
            return deleted.rowcount + events.rowcount

    # ---- reading ----------------------------------------------------------------------------
    def solves(self, since: float, template_id: str | None = None) -> list[dict[str, Any]]:
        """Stored solves since ``since`` (epoch s), oldest first."""
        query = sa.select(store.solves).where(store.solves.c.at >= since)
        if template_id is not None:
            query = query.where(store.solves.c.template_id == template_id)
        with store.engine(self.url).connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query.order_by("at"))]

    def latest_solve_at(self) -> float | None:
        """When the newest stored solve ended (None: no solve stored)."""
        with store.engine(self.url).connect() as conn:
            return conn.execute(sa.select(sa.func.max(store.solves.c.at))).scalar()

    def events(self, since: float, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored fallback / refusal / dropped events since ``since``, oldest first."""
        query = sa.select(store.events).where(store.events.c.at >= since)
        if kind is not None:
            query = query.where(store.events.c.kind == kind)
        with store.engine(self.url).connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query.order_by("at"))]

    def get_current_health(self, baselines: dict[str, float] | None = None,
                           now: float | None = None) -> HealthSnapshot:
        """The recent window judged by the one formula; ``baselines`` maps template ids to
        their validated ``performance_baseline_s`` (the health checks pass the registry's).
        This process's buffered records are written first, so what it just recorded counts
        (as the source document's record-then-read example expects)."""
        self.flush()
        now = now or time.time()
        since = now - self.window_minutes * 60
        rows = self.solves(since)
        refusals = len(self.events(since, kind="refusal"))
        templates = _per_template(rows, baselines or {})
        n = len(rows)
        if n == 0:
            return HealthSnapshot(HealthStatus.UNKNOWN, None, self.window_minutes, 0, 0.0, 0.0,
                                  refusals, 1.0, {}, now)
        error_rate = sum(t.errors for t in templates.values()) / n
        fallback_rate = sum(t.fallbacks for t in templates.values()) / n
        slowdown = max([t.slowdown for t in templates.values() if t.slowdown] or [1.0])
        score = health_score(error_rate, fallback_rate, slowdown)
        return HealthSnapshot(status_of(score), round(score, 2), self.window_minutes, n,
                              error_rate, fallback_rate, refusals, slowdown, templates, now)

    def trends(self, template_id: str, bucket: str = "hour", since: float | None = None,
               baseline_s: float | None = None) -> list[dict[str, Any]]:
        """Per hour or day: solves, median solve time, error rate, and the median's change
        vs the validated baseline (``baseline_s``; None without one)."""
        width = {"hour": 3600, "day": 86400}.get(bucket)
        if width is None:
            from fresh_solver.errors import InputError

            raise InputError(f"trend bucket must be 'hour' or 'day', got {bucket!r}")
        since = since if since is not None else time.time() - self.retention_hours * 3600
        buckets: dict[int, list[dict[str, Any]]] = {}
        for row in self.solves(since, template_id):
            buckets.setdefault(int(row["at"] // width) * width, []).append(row)
        trend = []
        for start in sorted(buckets):
            rows = buckets[start]
            median = statistics.median(r["solve_time_s"] for r in rows)
            trend.append({"start": start, "solves": len(rows), "median_solve_s": median,
                          "error_rate": sum(r["status"] not in ANSWERED for r in rows)
                          / len(rows),
                          "change_vs_baseline": (median / baseline_s - 1) if baseline_s
                          else None})
        return trend


def _per_template(rows: list[dict[str, Any]],
                  baselines: dict[str, float]) -> dict[str, TemplateHealth]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["template_id"], []).append(row)
    result = {}
    for template_id, group in sorted(grouped.items()):
        times = sorted(r["solve_time_s"] for r in group)
        result[template_id] = TemplateHealth(
            solves=len(group), errors=sum(r["status"] not in ANSWERED for r in group),
            fallbacks=sum(bool(r["fallback"]) for r in group),
            median_solve_s=statistics.median(times),
            p95_solve_s=percentile(times, 0.95),
            baseline_s=baselines.get(template_id),
            versions=tuple(sorted({r["version"] for r in group if r["version"]})))
    return result
