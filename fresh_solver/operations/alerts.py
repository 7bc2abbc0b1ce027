"""AlertManager: rules evaluated against the production figures, alerts deduplicated and
delivered through the configured channels, with a persistent log and outbox in the store.

One alert per (rule, template) fingerprint. Its life:

- **fires** when the rule's condition holds for its context; a notification goes to the rule's
  channels, unless the fingerprint was notified (firing or resolved) less than
  ``cooldown_minutes`` ago (a flapping condition does not page twice; the next evaluation
  after the cooldown notifies if it still holds);
- **repeats** every ``repeat_interval_minutes`` while it keeps holding;
- **resolves** when its context is evaluated again and the condition no longer holds; a
  resolved notification goes out if a firing one of the same episode did (the ``notifications``
  column counts the current episode's). A context that is not evaluated at all (e.g. a
  template without solves in the window) leaves its alerts as they are.

Notifications are rows of the ``deliveries`` outbox before anything is sent: :meth:`dispatch`
sends what is due, once per row (a row is claimed before sending, so two dispatchers never send
the same row), and a failed delivery is kept and retried with exponential backoff (30 s, 1 min,
2 min, ... up to 1 h) for ``FRESH_SOLVER_ALERT_MAX_AGE_H`` (default 24 h); a channel that
rejects the message outright (HTTP 4xx, SMTP 5xx) is given up at once. Nothing is lost across
restarts or while a channel is down.

Contexts (see :data:`fresh_solver.operations.rules.CONTEXT_FIELDS`): one system-wide context
(``status``, ``health_score``, ``solves``, ``check``; the per-template figures are None there)
and one per template with solves in the window (its figures; ``status`` and ``health_score``
None), so a rule fires at the grain it is about and never twice for one cause.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from fresh_solver.errors import InputError
from fresh_solver.operations import store
from fresh_solver.operations.channels import (
    Alert,
    DeliveryError,
    alert_fingerprint,
    build_channels,
    deliver,
)
from fresh_solver.operations.config import OperationsConfig, load_config
from fresh_solver.operations.rules import CONTEXT_FIELDS, Rule

log = logging.getLogger("fresh_solver.alerts")

FIRST_RETRY_S, MAX_RETRY_S, CLAIM_S = 30.0, 3600.0, 120.0


def _max_age_s() -> float:
    return float(os.environ.get("FRESH_SOLVER_ALERT_MAX_AGE_H", "24")) * 3600


class AlertManager:
    """Evaluates rules, keeps the alert log, sends through the outbox (see module doc)."""

    def __init__(self, config: OperationsConfig | None = None, *, db_url: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = config or load_config()
        self.url = (db_url or os.environ.get("FRESH_SOLVER_DB_URL")
                    or self.config.monitor.db_url or store.db_url())
        self.channels = build_channels(self.config)
        self.clock = clock

    # ---- the source document's set-up calls (operations.seed_alerting) ----------------------
    def add_channel(self, channel) -> None:
        """Add (or replace) an ``AlertChannel`` on this manager; checked like the file's."""
        from fresh_solver.operations.seed_alerting import add_channel

        self.config = add_channel(self.config, channel)
        self.channels = build_channels(self.config)

    def add_rule(self, rule) -> None:
        """Add an ``AlertRule`` on this manager, replacing the rule of the same name."""
        from fresh_solver.operations.seed_alerting import add_rule

        self.config = add_rule(self.config, rule)

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, contexts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply every rule to every context; returns the transitions (fired, repeated,
        resolved) with the notifications they queued. Call :meth:`dispatch` to send."""
        transitions = []
        for rule in self.config.rules:
            for context in contexts:
                template_id = context.get("template_id")
                if not rule.applies_to(template_id):
                    continue
                change = (self._firing(rule, context) if rule.evaluate(context)
                          else self._not_firing(rule, template_id))
                if change:
                    transitions.append(change)
        return transitions

    def _firing(self, rule: Rule, context: dict[str, Any]) -> dict[str, Any] | None:
        now = self.clock()
        template_id = context.get("template_id")
        alert = Alert(name=rule.name, severity=rule.severity, status="firing",
                      summary=_summary(rule, context), details=_evidence(context),
                      template_id=template_id, started_at=now)
        try:
            with store.engine(self.url).begin() as conn:
                return self._fire_in(conn, rule, alert, now)
        except IntegrityError:  # another evaluation created this alert just now: it notified
            log.info("alert %s: recorded by a concurrent evaluation", alert.fingerprint)
            return None

    def _fire_in(self, conn, rule: Rule, alert: Alert, now: float) -> dict[str, Any] | None:
        """The firing transition of ``alert`` inside the transaction ``conn``."""
        template_id = alert.template_id
        row = _alert_row(conn, alert.fingerprint)
        if row is None or row["status"] == "resolved":
            started, event, notified = now, "fired", 0
        else:
            started, event, notified = row["started_at"], "repeated", row["notifications"]
        # An episode's first notification waits out the cooldown since the last message
        # (a resolved one included), also on the evaluations after the one that recorded
        # it; later ones come every repeat interval.
        wait_s = (rule.repeat_interval_minutes if notified else rule.cooldown_minutes) * 60
        last = row["last_notified_at"] if row else None
        due = last is None or now - last >= wait_s
        alert = dataclasses.replace(alert, started_at=started)
        values = {"rule": rule.name, "severity": rule.severity, "status": "firing",
                  "template_id": template_id, "summary": alert.summary,
                  "details": json.dumps(alert.details), "started_at": started,
                  "resolved_at": None, "last_seen_at": now,
                  "notifications": notified + due}  # of this episode
        if due:
            values["last_notified_at"] = now
        _upsert(conn, alert.fingerprint, values, exists=row is not None)
        queued = self._enqueue(conn, alert, rule) if due else []
        if event == "repeated" and not queued:
            return None
        return {"event": event, "alert": alert.to_dict(), "notified": queued}

    def _not_firing(self, rule: Rule, template_id: str | None) -> dict[str, Any] | None:
        now = self.clock()
        fingerprint = alert_fingerprint(rule.name, template_id)
        with store.engine(self.url).begin() as conn:
            row = _alert_row(conn, fingerprint)
            if row is None or row["status"] != "firing":
                return None
            alert = Alert(name=rule.name, severity=rule.severity, status="resolved",
                          summary=row["summary"], details=json.loads(row["details"]),
                          template_id=template_id, started_at=row["started_at"],
                          resolved_at=now)
            # A resolution is news only to those who heard this episode fire; it starts the
            # cooldown, so a flapping condition does not page again at once.
            notify = bool(row["notifications"])
            conn.execute(store.alerts.update().where(store.alerts.c.fingerprint == fingerprint)
                         .values(status="resolved", resolved_at=now, last_seen_at=now,
                                 **({"last_notified_at": now} if notify else {})))
            queued = self._enqueue(conn, alert, rule) if notify else []
        return {"event": "resolved", "alert": alert.to_dict(), "notified": queued}

    def _enqueue(self, conn, alert: Alert, rule: Rule | None = None,
                 channels: tuple[str, ...] | None = None) -> list[str]:
        names = channels or (rule.channels if rule and rule.channels else None) \
            or tuple(self.channels)
        now = self.clock()
        conn.execute(store.deliveries.insert(), [
            {"fingerprint": alert.fingerprint, "channel": name,
             "payload": json.dumps(alert.to_dict()), "created_at": now, "attempts": 0,
             "next_attempt_at": now} for name in names])
        return list(names)

    # ---- one-off notifications --------------------------------------------------------------
    def notify(self, name: str, summary: str, *, severity: str = "info",
               details: dict[str, Any] | None = None, template_id: str | None = None,
               key: str = "", channels: tuple[str, ...] | None = None) -> bool:
        """Queue and dispatch a one-off message (the retune DAG's reviewer note, a failed
        task). ``key`` makes it idempotent: a retried task that notifies with the same key
        sends nothing new. Returns True if it was queued now."""
        alert = Alert(name=name, severity=severity, status="firing", summary=summary,
                      details=details or {},
                      fingerprint=_event_fingerprint(name, template_id, key),
                      template_id=template_id, started_at=self.clock())
        unknown = [c for c in channels or () if c not in self.channels]
        if unknown:
            raise InputError(f"unknown alert channel(s) {unknown}; configured: "
                             f"{sorted(self.channels)}")
        try:
            with store.engine(self.url).begin() as conn:
                if _alert_row(conn, alert.fingerprint) is not None:
                    return False
                now = self.clock()
                _upsert(conn, alert.fingerprint, {
                    "rule": name, "severity": severity, "status": "resolved",
                    "template_id": template_id, "summary": alert.summary,
                    "details": json.dumps(alert.details), "started_at": now,
                    "resolved_at": now, "last_seen_at": now, "last_notified_at": now,
                    "notifications": 1}, exists=False)
                self._enqueue(conn, alert, channels=channels)
        except IntegrityError:  # the same key queued by a concurrent caller just now
            return False
        self.dispatch()
        return True

    def create_performance_alert(self, template_id: str, current_time: float,
                                 baseline_time: float, threshold_percent: float = 50.0
                                 ) -> Alert | None:
        """The source document's call: alert (deduplicated like a rule) when
        ``current_time`` is more than ``threshold_percent`` % above ``baseline_time``;
        returns the alert, or None when within the threshold."""
        finite = all(math.isfinite(x) for x in (current_time, baseline_time, threshold_percent))
        if not finite or baseline_time <= 0 or current_time < 0 or threshold_percent < 0:
            raise InputError(f"baseline_time must be positive, current_time and "
                             f"threshold_percent non-negative, all finite (got {current_time}, "
                             f"{baseline_time}, {threshold_percent})")
        change = current_time / baseline_time - 1
        # The configured rule of that name gives routing, cooldown and repeat interval; the
        # call gives the threshold; without one, twice the threshold is critical.
        configured = next((r for r in self.config.rules if r.name == "performance_degradation"),
                          None)
        rule = Rule("performance_degradation", f"performance_change > {threshold_percent / 100}",
                    configured.severity if configured else
                    "critical" if change * 100 > 2 * threshold_percent else "warning",
                    channels=configured.channels if configured else None,
                    repeat_interval_minutes=configured.repeat_interval_minutes if configured
                    else 60.0,
                    cooldown_minutes=configured.cooldown_minutes if configured else 15.0)
        context = {"template_id": template_id, "performance_change": change,
                   "median_solve_s": current_time, "baseline_s": baseline_time,
                   "slowdown": current_time / baseline_time}
        if not rule.evaluate(context):
            return None
        fired = self._firing(rule, context)  # None: firing already, repeat not yet due
        self.dispatch()
        if fired is not None:
            return Alert.from_dict(fired["alert"])
        return Alert(name=rule.name, severity=rule.severity, status="firing",
                     summary=_summary(rule, context), details=_evidence(context),
                     template_id=template_id)

    # ---- delivery ---------------------------------------------------------------------------
    def dispatch(self) -> dict[str, int]:
        """Send every due delivery once; returns counts of delivered, retrying, given up."""
        counts = {"delivered": 0, "retrying": 0, "given_up": 0}
        d = store.deliveries.c
        now = self.clock()
        with store.engine(self.url).connect() as conn:
            due = conn.execute(sa.select(store.deliveries).where(
                d.delivered_at.is_(None), d.gave_up_at.is_(None), d.next_attempt_at <= now)
                .order_by(d.id)).mappings().all()
        for row in due:
            if not self._claim(row):
                continue  # another dispatcher has it
            counts[self._send(row)] += 1
        return counts

    def _claim(self, row) -> bool:
        d = store.deliveries.c
        with store.engine(self.url).begin() as conn:
            claimed = conn.execute(store.deliveries.update().where(
                d.id == row["id"], d.next_attempt_at == row["next_attempt_at"],
                d.delivered_at.is_(None)).values(next_attempt_at=self.clock() + CLAIM_S))
        return claimed.rowcount == 1

    def _send(self, row) -> str:
        now = self.clock()
        alert = Alert.from_dict(json.loads(row["payload"]))
        channel = self.channels.get(row["channel"])
        values: dict[str, Any] = {"attempts": row["attempts"] + 1}
        outcome = "delivered"
        if channel is None:
            values |= {"gave_up_at": now, "last_error": "channel no longer configured"}
            outcome = "given_up"
        else:
            try:
                channel.send(alert)
                values["delivered_at"] = now
            except DeliveryError as exc:
                retry_in = min(FIRST_RETRY_S * 2 ** row["attempts"], MAX_RETRY_S)
                too_old = now + retry_in - row["created_at"] > _max_age_s()
                values["last_error"] = str(exc)[:1000]
                if exc.retryable and not too_old:
                    values["next_attempt_at"] = now + retry_in
                    outcome = "retrying"
                else:
                    values["gave_up_at"] = now
                    outcome = "given_up"
        with store.engine(self.url).begin() as conn:
            conn.execute(store.deliveries.update().where(store.deliveries.c.id == row["id"])
                         .values(**values))
        if outcome != "delivered":
            log.warning("alert %s to %s %s: %s", alert.name, row["channel"],
                        "will be retried" if outcome == "retrying" else "given up",
                        values["last_error"])
        return outcome

    def send_test(self, channel: str) -> None:
        """Deliver a test alert through one channel now (``fresh-solver alert test``)."""
        if channel not in self.channels:
            raise InputError(f"unknown alert channel {channel!r}; configured: "
                             f"{sorted(self.channels)} (from {self.config.source or 'defaults'})")
        deliver(self.channels[channel], Alert(
            name="test", severity="info", status="firing",
            summary=f"fresh-solver test alert through channel {channel!r}",
            details={"sent_by": "fresh-solver alert test"},
            fingerprint=f"test-{time.time_ns()}"))

    # ---- reading ----------------------------------------------------------------------------
    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The alert log, most recently seen first, with each alert's delivery states."""
        with store.engine(self.url).connect() as conn:
            rows = conn.execute(sa.select(store.alerts).order_by(
                store.alerts.c.last_seen_at.desc()).limit(limit)).mappings().all()
            out = []
            for row in rows:
                deliveries = conn.execute(sa.select(store.deliveries).where(
                    store.deliveries.c.fingerprint == row["fingerprint"])).mappings().all()
                out.append(dict(row) | {"details": json.loads(row["details"]),
                                        "deliveries": [_delivery_state(d) for d in deliveries]})
        return out

    def enforce_retention(self, retention_hours: float) -> int:
        """Delete resolved alerts and finished deliveries older than ``retention_hours``."""
        cutoff = self.clock() - retention_hours * 3600
        a, d = store.alerts.c, store.deliveries.c
        with store.engine(self.url).begin() as conn:
            old = conn.execute(store.deliveries.delete().where(
                d.created_at < cutoff, sa.or_(d.delivered_at.is_not(None),
                                              d.gave_up_at.is_not(None)))).rowcount
            old += conn.execute(store.alerts.delete().where(
                a.status == "resolved", a.last_seen_at < cutoff)).rowcount
        return old


def build_contexts(report: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule contexts from a health report (:meth:`HealthChecker.generate_health_report`) and
    the window's fallback/refusal events (see the module doc for the grain)."""
    production = report.get("production", {})
    empty = dict.fromkeys(CONTEXT_FIELDS)
    checks = {c["name"]: c["status"] for c in report.get("checks", [])}
    contexts = [empty | {"status": report["status"], "check": checks,
                         "health_score": production.get("overall_health_score"),
                         "solves": production.get("solves", 0), "template_id": None}]
    for template_id, figures in (production.get("templates") or {}).items():
        mine = [e for e in events if e["template_id"] == template_id]
        baseline = figures.get("baseline_s")
        median = figures["median_solve_s"]
        contexts.append(empty | {
            "template_id": template_id, "check": checks, "solves": figures["solves"],
            "median_solve_s": median, "p95_solve_s": figures["p95_solve_s"],
            "baseline_s": baseline,
            "performance_change": median / baseline - 1 if baseline else None,
            "slowdown": median / baseline if baseline else None,
            "error_rate": figures["errors"] / figures["solves"],
            "fallbacks": sum(e["kind"] == "fallback" for e in mine),
            "fallback_rate": figures["fallbacks"] / figures["solves"],
            "refusals": sum(e["kind"] == "refusal" for e in mine)})
    return contexts


def _summary(rule: Rule, context: dict[str, Any]) -> str:
    where = f" for template {context['template_id']}" if context.get("template_id") else ""
    return f"{rule.name}{where}: {rule.condition}" + (
        f" — {rule.description}" if rule.description else "")


def _evidence(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if v is not None}


def _event_fingerprint(name: str, template_id: str | None, key: str) -> str:
    import hashlib

    return hashlib.sha256(f"event\0{name}\0{template_id}\0{key}".encode()).hexdigest()[:32]


def _alert_row(conn, fingerprint: str):
    return conn.execute(sa.select(store.alerts).where(
        store.alerts.c.fingerprint == fingerprint)).mappings().first()


def _upsert(conn, fingerprint: str, values: dict[str, Any], exists: bool) -> None:
    table = store.alerts
    if exists:
        conn.execute(table.update().where(table.c.fingerprint == fingerprint).values(**values))
    else:
        conn.execute(table.insert().values(fingerprint=fingerprint,
                                           notifications=values.pop("notifications", 0),
                                           **values))


def _delivery_state(row) -> dict[str, Any]:
    state = ("delivered" if row["delivered_at"] else "given up" if row["gave_up_at"]
             else "pending")
    return {"channel": row["channel"], "state": state, "attempts": row["attempts"],
            "last_error": row["last_error"]}
