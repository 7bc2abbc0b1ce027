"""The production monitor (fresh_solver.operations.monitor, .store, .metrics) on real stores.

SQLite files under tmp_path, and this machine's PostgreSQL (127.0.0.1:5432, user postgres,
trust auth): each PostgreSQL test gets a database of its own (named after this session), dropped
after. Writers are per store URL per process, so every test uses a URL of its own. "Down" is a
PostgreSQL port where nothing listens (brought back by a TCP forwarder to the real server
started on it), or an SQLite path under a regular file (brought back by replacing the file with
a folder).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from benchmarks.faults import TcpForwarder
from fresh_solver.devstack import free_port
from fresh_solver.errors import InputError
from fresh_solver.operations import store
from fresh_solver.operations.monitor import (
    HealthStatus,
    PerformanceMonitor,
    SolveRecord,
    health_score,
    status_of,
)
from tests import monitor_workers as workers
from tests import postgres

SESSION = f"fs_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
HOUR = 3600.0
_databases = iter(range(1_000_000))


# ---- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'operations.db'}"


@pytest.fixture
def monitor(sqlite_url: str) -> PerformanceMonitor:
    return PerformanceMonitor(db_url=sqlite_url, retention_hours=24, window_minutes=60)


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the server's maintenance database (skips when unreachable)."""
    with postgres.admin_engine() as admin:
        yield admin


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """A new, empty database of this session (no schema yet); dropped after the test."""
    with postgres.database(pg_admin, f"{SESSION}_{next(_databases)}") as tail:
        try:
            yield f"postgresql://{tail}"
        finally:
            store.dispose_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store nobody has opened yet, on either backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'operations.db'}"
    return request.getfixturevalue("pg_url")


def solve_record(template_id: str = "part", status: str = "OPTIMAL", solve_time_s: float = 0.1,
                 **fields) -> SolveRecord:
    return SolveRecord(template_id=template_id, status=status, solve_time_s=solve_time_s,
                       **fields)


def stored(monitor: PerformanceMonitor, *records: SolveRecord) -> None:
    for record in records:
        monitor.record(record)
    assert monitor.flush(timeout=30)


def count(url: str, table: sa.Table, *where) -> int:
    with store.engine(url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---- the health formula ---------------------------------------------------------------------


@pytest.mark.parametrize(("error_rate", "fallback_rate", "slowdown", "score", "status"), [
    (0.0, 0.0, 1.0, 100.0, "healthy"),
    (0.05, 0.0, 1.0, 95.0, "healthy"),      # 5 % errors alone is still healthy
    (0.06, 0.0, 1.0, 94.0, "warning"),
    (0.25, 0.0, 1.0, 75.0, "warning"),
    (0.26, 0.0, 1.0, 74.0, "critical"),     # 26 % is critical
    (0.0, 1.0, 1.0, 80.0, "warning"),       # serving only fallback parameters
    (0.0, 0.0, 0.5, 100.0, "healthy"),      # faster than validated: no bonus, no penalty
    (0.0, 0.0, 1.5, 87.5, "warning"),
    (0.0, 0.0, 2.0, 75.0, "warning"),       # 2x slower than validated
    (0.0, 0.0, 3.0, 50.0, "critical"),      # 3x
    (0.0, 0.0, 10.0, 50.0, "critical"),     # the slowdown penalty is capped at half
    (1.0, 0.0, 1.0, 0.0, "critical"),
    (0.1, 0.5, 2.0, 100 * 0.9 * 0.9 * 0.75, "critical"),
])
def test_health_formula_and_thresholds(error_rate: float, fallback_rate: float,
                                       slowdown: float, score: float, status: str) -> None:
    assert health_score(error_rate, fallback_rate, slowdown) == pytest.approx(score)
    assert status_of(health_score(error_rate, fallback_rate, slowdown)) == status


@pytest.mark.parametrize(("score", "status"), [
    (100.0, "healthy"), (95.0, "healthy"), (94.99, "warning"), (75.0, "warning"),
    (74.99, "critical"), (0.0, "critical"), (None, "unknown")])
def test_status_boundaries(score: float | None, status: str) -> None:
    assert status_of(score) is HealthStatus(status)


# ---- get_current_health on stored solves ----------------------------------------------------


def test_health_of_an_empty_store_is_unknown(monitor: PerformanceMonitor) -> None:
    snapshot = monitor.get_current_health()
    assert snapshot.status is HealthStatus.UNKNOWN
    assert snapshot.overall_health_score is None
    assert snapshot.solves == 0
    assert json.loads(json.dumps(snapshot.to_dict()))["status"] == "unknown"


@pytest.mark.parametrize(("errors", "status", "score"), [
    (0, "healthy", 100.0), (2, "warning", 90.0), (6, "critical", 70.0)])
def test_health_from_stored_solves(monitor: PerformanceMonitor, errors: int, status: str,
                                   score: float) -> None:
    statuses = ["UNKNOWN", "MODEL_INVALID"] * (errors // 2) + ["OPTIMAL"] * (20 - errors)
    stored(monitor, *[solve_record(status=s, solve_time_s=0.1 + i / 100, version="3")
                      for i, s in enumerate(statuses)])
    snapshot = monitor.get_current_health()
    assert snapshot.status is HealthStatus(status)
    assert snapshot.overall_health_score == pytest.approx(score)
    assert snapshot.solves == 20
    assert snapshot.error_rate == pytest.approx(errors / 20)
    part = snapshot.templates["part"]
    assert (part.solves, part.errors, part.versions) == (20, errors, ("3",))
    assert part.median_solve_s == pytest.approx(0.195)
    assert json.loads(json.dumps(snapshot.to_dict()))["status"] == status


def test_health_counts_infeasible_as_an_answer_and_fallbacks_and_refusals(
        monitor: PerformanceMonitor) -> None:
    stored(monitor, solve_record(status="INFEASIBLE"), solve_record(status="FEASIBLE"),
           solve_record(fallback=True, params_source="fallback:registry unreachable"),
           solve_record(fallback=True, params_source="fallback:registry unreachable"))
    monitor.record_event("refusal", "part", "refused v3 (alias): validation_status failed")
    monitor.record_event("fallback", "part", "registry unreachable")
    assert monitor.flush(timeout=30)
    snapshot = monitor.get_current_health()
    assert snapshot.error_rate == 0.0
    assert snapshot.fallback_rate == 0.5
    assert snapshot.refusals == 1
    assert snapshot.overall_health_score == pytest.approx(90.0)
    assert snapshot.status is HealthStatus.WARNING


def test_health_judges_the_window_and_the_baselines(monitor: PerformanceMonitor) -> None:
    now = time.time()
    stored(monitor,
           *[solve_record("slow", solve_time_s=0.2, at=now - 60) for _ in range(3)],
           *[solve_record("fast", solve_time_s=0.1, at=now - 60) for _ in range(3)],
           *[solve_record("old", status="UNKNOWN", at=now - 2 * HOUR) for _ in range(5)])
    snapshot = monitor.get_current_health(baselines={"slow": 0.1, "fast": 0.1}, now=now)
    assert set(snapshot.templates) == {"slow", "fast"}  # two hours ago is outside 60 min
    assert snapshot.error_rate == 0.0
    assert snapshot.slowdown == pytest.approx(2.0)
    assert snapshot.templates["fast"].slowdown == pytest.approx(1.0)
    assert snapshot.overall_health_score == pytest.approx(75.0)
    assert snapshot.status is HealthStatus.WARNING
    without = monitor.get_current_health(now=now)
    assert without.slowdown == 1.0 and without.status is HealthStatus.HEALTHY


def test_trends_per_hour(monitor: PerformanceMonitor) -> None:
    start = (time.time() // HOUR - 5) * HOUR  # five whole hours ago
    times = {0: [0.1, 0.2, 0.3], 1: [0.4], 3: [0.2, 0.2]}
    records = [solve_record("part", solve_time_s=t, at=start + hour * HOUR + 60 * i)
               for hour, ts in times.items() for i, t in enumerate(ts)]
    records.append(solve_record("part", status="UNKNOWN", solve_time_s=9.0,
                                at=start + 3 * HOUR + 600))
    records.append(solve_record("other", solve_time_s=5.0, at=start + 60))
    stored(monitor, *records)
    trend = monitor.trends("part", "hour", since=start, baseline_s=0.2)
    assert [row["start"] for row in trend] == [start, start + HOUR, start + 3 * HOUR]
    assert [row["solves"] for row in trend] == [3, 1, 3]
    assert [row["median_solve_s"] for row in trend] == pytest.approx([0.2, 0.4, 0.2])
    assert [row["error_rate"] for row in trend] == pytest.approx([0.0, 0.0, 1 / 3])
    assert [row["change_vs_baseline"] for row in trend] == pytest.approx([0.0, 1.0, 0.0])
    [day] = monitor.trends("part", "day", since=start + 3 * HOUR)
    assert day["solves"] == 3 and day["change_vs_baseline"] is None
    with pytest.raises(InputError, match="bucket"):
        monitor.trends("part", "week")


def test_record_solve_performance_the_seed_call(monitor: PerformanceMonitor) -> None:
    monitor.record_solve_performance(template_id="bracket", solve_time=1.5, instance_count=12,
                                     solver_status="OPTIMAL", memory_usage_mb=256.0,
                                     objective=57, version="4")
    monitor.record_solve_performance("bracket", 2.5)  # status unknown: an error
    assert monitor.flush(timeout=30)
    first, second = monitor.solves(0, "bracket")
    assert (first["jobs"], first["status"], first["solve_time_s"], first["peak_rss_mb"],
            first["objective"], first["version"]) == (12, "OPTIMAL", 1.5, 256.0, 57, "4")
    assert first["host"]  # the machine fingerprint's id, filled in
    assert second["status"] == "UNKNOWN"
    assert monitor.get_current_health().error_rate == 0.5


# ---- the store: SQLite and PostgreSQL -------------------------------------------------------


def test_concurrent_writer_processes_and_threads_first_opening_a_fresh_store(
        fresh_url: str) -> None:
    """4 spawned processes x 2 threads x 50 records, and 2 threads x 50 here, on a store none
    of them has opened: all wait at a barrier, then open it (the first-open race: the schema is
    created once) and write at once. Every record arrives exactly once; the schema is at head."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(5)
    procs = [context.Process(target=workers.writer_process,
                             args=(fresh_url, "conc", p, 50, 2, start)) for p in range(1, 5)]
    for proc in procs:
        proc.start()
    start.wait(120)
    assert workers.write_records(fresh_url, "conc", 9, 50, 2)
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    objectives = [row["objective"] for row in PerformanceMonitor(db_url=fresh_url).solves(0)]
    expected = [p * 1000 + i for p in (1, 2, 3, 4, 9) for i in range(50)]
    assert sorted(objectives) == expected  # none lost, none twice
    current, head = store.schema_revision(store.engine(fresh_url))
    assert current == head is not None


def test_schema_at_head_and_alembic_version(sqlite_url: str) -> None:
    engine = store.engine(sqlite_url)
    current, head = store.schema_revision(engine)
    assert current == head == store.SCHEMA_HEAD  # the constant that skips alembic at head
    tables = set(sa.inspect(engine).get_table_names())
    assert {"solves", "events", "alerts", "deliveries", "alembic_version"} <= tables
    store.upgrade(engine)  # a no-op at head
    assert store.schema_revision(engine) == (current, head)


def test_retention_deletes_old_rows_and_keeps_new_ones(fresh_url: str) -> None:
    monitor = PerformanceMonitor(db_url=fresh_url, retention_hours=24)
    now = time.time()
    stored(monitor, *[solve_record("kept", at=now - 60) for _ in range(3)],
           *[solve_record("old", at=now - 5 * HOUR) for _ in range(4)])
    monitor.record_event("fallback", "old", "registry unreachable")  # at: now
    assert monitor.flush(timeout=30)
    with store.engine(fresh_url).begin() as conn:  # an old event (record_event stamps now)
        conn.execute(store.events.insert(), [{"at": now - 5 * HOUR, "template_id": "old",
                                              "kind": "refusal", "detail": "x", "host": "h"}])
    assert monitor.enforce_retention() == 0  # nothing is 24 h old yet
    future = now + 22 * HOUR  # the cutoff is now 2 hours ago
    assert monitor.enforce_retention(now=future) == 4 + 1
    assert [r["template_id"] for r in monitor.solves(0)] == ["kept"] * 3
    assert [e["kind"] for e in monitor.events(0)] == ["fallback"]
    assert monitor.enforce_retention(now=future) == 0


def test_an_overlong_value_does_not_block_the_writer(fresh_url: str) -> None:
    """PostgreSQL refuses a string longer than its column: it is cut to fit, so one long
    template id does not hold every later record in the buffer."""
    monitor = PerformanceMonitor(db_url=fresh_url)
    long_id, long_source = "t" * 300, "fallback:" + "why " * 200
    stored(monitor, solve_record(long_id, params_source=long_source), solve_record("after"))
    monitor.record_event("fallback", long_id, "x" * 5000)  # a Text column: kept whole
    assert monitor.flush(timeout=30)
    first, second = monitor.solves(0)
    assert (first["template_id"], first["params_source"]) == (long_id[:200], long_source[:500])
    assert second["template_id"] == "after"
    [event] = monitor.events(0)
    assert (event["template_id"], len(event["detail"])) == (long_id[:200], 5000)


# ---- store down: production solves are unaffected -------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def down_store(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Callable[[], None]]]:
    """FRESH_SOLVER_DB_URL at a store that is down; yields (url, bring it back)."""
    if request.param == "postgresql":
        database = request.getfixturevalue("pg_url")
        port = free_port()  # nothing listens there until the forwarder starts
        url = database.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
        forwarders: list[TcpForwarder] = []

        def back() -> None:
            forwarders.append(TcpForwarder(port, ("127.0.0.1", 5432)))
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the store's folder should be")
        url = f"sqlite:///{blocker / 'operations.db'}"

        def back() -> None:
            blocker.unlink()
            blocker.mkdir()
    monkeypatch.setenv("FRESH_SOLVER_DB_URL", url)
    yield url, back
    store.dispose_all()
    if request.param == "postgresql":
        for forwarder in forwarders:
            forwarder.close()


def small_problem():
    from fresh_solver.model.generate import generate

    return generate("family", "small", 1)


def test_store_down_the_production_solve_is_unaffected_and_flushed_when_back(
        down_store: tuple[str, Callable[[], None]], caplog: pytest.LogCaptureFixture) -> None:
    from fresh_solver import production

    url, back = down_store
    caplog.set_level(logging.WARNING, logger="fresh_solver.monitor")
    template_id = f"down-{uuid.uuid4().hex[:6]}"
    results = [production.solve(small_problem(), template_id, time_limit=1.0)
               for _ in range(2)]
    assert all(r.status in ("OPTIMAL", "FEASIBLE") and r.valid for r in results)
    monitor = PerformanceMonitor()
    assert monitor.url == url
    assert monitor.buffer_state()["buffered"] == 2
    assert wait_until(lambda: any("unreachable" in r.getMessage() and "buffered" in
                                  r.getMessage() for r in caplog.records))
    assert not monitor.flush(timeout=0.2)  # still down: still buffered, nothing raised
    assert monitor.buffer_state()["buffered"] == 2
    back()
    assert monitor.flush(timeout=60)
    assert monitor.buffer_state() == {"buffered": 0, "dropped": 0, "written": 2}
    rows = monitor.solves(0, template_id)
    assert [(r["status"], r["objective"], r["params_source"]) for r in rows] == \
        [(res.status, res.objective, res.params_source) for res in results]
    assert rows[0]["jobs"] == len(small_problem().jobs) and rows[0]["tasks"]
    assert any("back after" in r.getMessage() for r in caplog.records)


def test_a_registry_fallback_is_stored_with_the_solve(sqlite_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Fallback events go to the store (every process's health checks read them there)."""
    from fresh_solver import production

    monkeypatch.setenv("FRESH_SOLVER_DB_URL", sqlite_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    template_id = f"fb-{uuid.uuid4().hex[:6]}"
    result = production.solve(small_problem(), template_id, time_limit=1.0)
    production.wait_for_refreshes(timeout=60)
    assert result.params_source.startswith("fallback:")
    assert result.status in ("OPTIMAL", "FEASIBLE")
    fallbacks = production.recent_fallbacks()  # flushes this process's buffer first
    assert fallbacks and {f["template_id"] for f in fallbacks} == {template_id}
    assert {f["kind"] for f in fallbacks} == {"fallback"}
    monitor = PerformanceMonitor()
    assert [e["detail"] for e in monitor.events(0, kind="fallback")] == \
        [f["why"] for f in fallbacks]
    [row] = monitor.solves(0, template_id)
    assert row["fallback"] and row["params_source"] == result.params_source
    assert monitor.get_current_health().fallback_rate == 1.0


def test_buffer_overflow_drops_are_counted_and_stored_when_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fresh_solver.monitor")
    monkeypatch.setenv("FRESH_SOLVER_MONITOR_BUFFER", "5")  # read when the writer is created
    blocker = tmp_path / "overflow"
    blocker.write_text("not a folder")
    monitor = PerformanceMonitor(db_url=f"sqlite:///{blocker / 'operations.db'}")
    monitor.record(solve_record("flood", objective=0))
    # the writer has failed once and waits before retrying: the rest arrive meanwhile
    assert wait_until(lambda: any("unreachable" in r.getMessage() for r in caplog.records))
    for i in range(1, 12):
        monitor.record(solve_record("flood", objective=i))
    assert monitor.buffer_state() == {"buffered": 5, "dropped": 7, "written": 0}
    assert any("records dropped so far" in r.getMessage() for r in caplog.records)
    blocker.unlink()
    blocker.mkdir()
    assert monitor.flush(timeout=60)
    assert monitor.buffer_state() == {"buffered": 0, "dropped": 7, "written": 5}
    assert [r["objective"] for r in monitor.solves(0, "flood")] == [7, 8, 9, 10, 11]
    [event] = monitor.events(0, kind="dropped")
    assert re.match(r"7 records dropped", event["detail"])


# ---- `solve --production` from the command line ---------------------------------------------


def test_cli_solve_production_is_recorded_for_another_process(
        tmp_path: Path, tracking_home: Path) -> None:
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(problem_to_dict(generate_family("small", 1,
                                                                  template_id="cli-part"))))
    url = f"sqlite:///{tmp_path / 'cli-store' / 'operations.db'}"
    # The record reaches the store in the flush at exit; its budget (default 2 s) is raised
    # because this store is new (created at that flush) and the machine may be busy.
    env = {**os.environ, "FRESH_SOLVER_HOME": str(tracking_home), "FRESH_SOLVER_DB_URL": url,
           "FRESH_SOLVER_MONITOR_FLUSH_S": "60"}
    done = subprocess.run([sys.executable, "-m", "fresh_solver.cli", "solve", str(problem),
                           "--production", "cli-part", "--time-limit", "1", "--json"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    [row] = PerformanceMonitor(db_url=url).solves(0)
    assert (row["template_id"], row["status"], row["objective"], row["params_source"]) == \
        ("cli-part", summary["status"], summary["objective"], summary["params_source"])
    assert row["jobs"] == len(small_problem().jobs)
    assert not list(tmp_path.glob("mlruns")) and not (tmp_path / ".fresh_solver").exists()


# ---- Prometheus metrics ---------------------------------------------------------------------


def test_metrics_render_parses_and_holds_the_figures(monitor: PerformanceMonitor) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from fresh_solver.operations import metrics

    now = time.time()
    stored(monitor,
           solve_record("part", solve_time_s=0.03, version="2", at=now - 120),
           solve_record("part", solve_time_s=0.7, version="3", at=now - 60),
           solve_record("part", status="UNKNOWN", solve_time_s=2.0, version="3", at=now - 30),
           solve_record("mix", solve_time_s=0.2, fallback=True,
                        params_source="fallback:registry unreachable; defaults"))
    monitor.record_event("fallback", "mix", "registry unreachable")
    monitor.record_event("fallback", "mix", "registry slow")
    monitor.record_event("refusal", "part", "refused v4 (alias): validation_status failed")
    assert monitor.flush(timeout=30)
    report = {"status": "warning", "production": {"overall_health_score": 66.67},
              "checks": [{"name": "registry", "status": "critical"}]}
    text = metrics.render(monitor, health=lambda: report).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(name: str, sample: str | None = None) -> dict[tuple, float]:
        return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples
                if s.name == (sample or name)}

    hist = families["fresh_solver_solve_duration_seconds"]
    assert hist.type == "histogram"
    counts = samples("fresh_solver_solve_duration_seconds",
                     "fresh_solver_solve_duration_seconds_count")
    assert counts == {(("status", "OPTIMAL"), ("template", "part")): 2,
                      (("status", "UNKNOWN"), ("template", "part")): 1,
                      (("status", "OPTIMAL"), ("template", "mix")): 1}
    buckets = {(float(s.labels["le"]), s.labels["status"], s.labels["template"]): s.value
               for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets[(0.01, "OPTIMAL", "part")] == 0
    assert buckets[(0.05, "OPTIMAL", "part")] == 1
    assert buckets[(1.0, "OPTIMAL", "part")] == 2
    assert buckets[(1.0, "UNKNOWN", "part")] == 0
    assert buckets[(float("inf"), "UNKNOWN", "part")] == 1
    sums = samples("fresh_solver_solve_duration_seconds",
                   "fresh_solver_solve_duration_seconds_sum")
    assert sums[(("status", "OPTIMAL"), ("template", "part"))] == pytest.approx(0.73)
    assert samples("fresh_solver_version_served") == {
        (("template", "mix"), ("version", "none")): 1, (("template", "part"), ("version", "3")): 1}
    assert samples("fresh_solver_fallbacks", "fresh_solver_fallbacks_total") == \
        {(("template", "mix"),): 2}
    assert samples("fresh_solver_refusals", "fresh_solver_refusals_total") == \
        {(("template", "part"),): 1}
    assert samples("fresh_solver_error_rate") == {
        (("template", "mix"),): 0.0, (("template", "part"),): pytest.approx(1 / 3)}
    assert samples("fresh_solver_health_status") == {(): 1}
    assert samples("fresh_solver_check_status") == {(("check", "registry"),): 2}
    assert samples("fresh_solver_health_score") == {(): 66.67}
    # without a health report, and on an empty store, it still renders and parses
    empty = PerformanceMonitor(db_url=monitor.url.replace("operations.db", "empty.db"))
    names = {f.name for f in text_string_to_metric_families(metrics.render(empty).decode())}
    assert "fresh_solver_solve_duration_seconds" in names
    assert "fresh_solver_health_status" not in names


def test_a_row_the_store_refuses_is_dropped_and_later_rows_still_arrive(tmp_path, caplog):
    """A refused row (NOT NULL violated) must not block the writer: it is dropped, logged and
    counted; the rows before and after it are written once."""
    from fresh_solver.operations.monitor import PerformanceMonitor, SolveRecord

    monitor = PerformanceMonitor(db_url=f"sqlite:///{tmp_path / 'refusing.db'}")
    monitor.record(SolveRecord("before", "OPTIMAL", 0.1))
    monitor.record(SolveRecord(None, "OPTIMAL", 0.1))  # type: ignore[arg-type]
    monitor.record(SolveRecord("after", "OPTIMAL", 0.1))
    assert monitor.flush(timeout=30)
    assert sorted(r["template_id"] for r in monitor.solves(0)) == ["after", "before"]
    assert monitor.buffer_state()["dropped"] == 1
    assert "refused a solves record" in caplog.text


def _cli_production_solve(problem: Path, home: Path, cwd: Path, **extra: str):
    env = {**os.environ, "FRESH_SOLVER_HOME": str(home), "FRESH_SOLVER_MONITOR_FLUSH_S": "0.5",
           **extra}
    return subprocess.run([sys.executable, "-m", "fresh_solver.cli", "solve", str(problem),
                           "--production", "cli-part", "--time-limit", "0.2", "--json"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


SPOOLED_SOLVES = 4  # processes while the store is down (the README's figure: 200)


def test_records_of_processes_that_exit_while_the_store_is_down_are_written_once_when_back(
        down_store, tmp_path: Path) -> None:
    """Each one-shot production solve exits while the store is down: its record is kept on
    its disk; the first process that reaches the store again writes them all, in order,
    each once (the ledger), and health says what waits meanwhile."""
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict
    from fresh_solver.operations import spool

    url, back = down_store
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(problem_to_dict(generate_family("small", 1,
                                                                  template_id="cli-part"))))
    home = tmp_path / "home"
    for _ in range(SPOOLED_SOLVES):
        done = _cli_production_solve(problem, home, tmp_path, FRESH_SOLVER_DB_URL=url)
        assert done.returncode == 0, done.stderr
        assert "records kept in" in done.stderr and "Traceback" not in done.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRESH_SOLVER_HOME", str(home))
        assert len(spool.waiting(url)) == SPOOLED_SOLVES
        assert spool.state(url)["spool_records"] == SPOOLED_SOLVES
    back()
    done = _cli_production_solve(problem, home, tmp_path, FRESH_SOLVER_DB_URL=url,
                                 FRESH_SOLVER_MONITOR_FLUSH_S="60")
    assert done.returncode == 0, done.stderr
    rows = PerformanceMonitor(db_url=url).solves(0)
    assert len(rows) == SPOOLED_SOLVES + 1  # every record, none twice
    assert count(url, store.spooled) == SPOOLED_SOLVES
    spooled = sorted(rows, key=lambda r: r["id"])[:SPOOLED_SOLVES]
    assert [r["at"] for r in spooled] == sorted(r["at"] for r in spooled)  # in order
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRESH_SOLVER_HOME", str(home))
        assert spool.waiting(url) == []


def test_a_spool_folder_that_cannot_be_written_makes_the_loss_visible(
        down_store, tmp_path: Path) -> None:
    from fresh_solver.model.generate import generate_family
    from fresh_solver.model.problem import problem_to_dict

    url, _ = down_store
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(problem_to_dict(generate_family("small", 1,
                                                                  template_id="cli-part"))))
    home = tmp_path / "home"
    home.mkdir()
    (home / "spool").write_text("a file where the spool folder should be")
    done = _cli_production_solve(problem, home, tmp_path, FRESH_SOLVER_DB_URL=url)
    assert done.returncode == 0, done.stderr
    assert "the spool folder not writable" in done.stderr and "1 records lost" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_spool_figure_command_counts_every_record_once(pg_admin, tmp_path: Path) -> None:
    """The README's figure (`spool_figure --solves 200`) at a size a test affords."""
    from benchmarks import spool_figure

    assert spool_figure.main(["--solves", "2", "--lossy", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert (data["kept_on_disk"], data["spool_files_waiting"], data["failed_processes"]) == \
        (2, 2, 0)
    assert data["rows_in_store"] == data["distinct_rows"] == 3 and data["ledger_rows"] == 2
    assert data["spool_files_left"] == 0 and data["lossy_solves_that_said_so"] == 1
