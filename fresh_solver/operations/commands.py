"""The operations commands: `health`, `serve` and `alert`.

Exit codes: `health` 0 for healthy or warning, 1 for critical or unknown (as `/health`'s 200 and
503), 2 bad input; `alert test` 0 delivered, 1 not delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def cmd_health(args: argparse.Namespace) -> int:
    """Run the checks once and print the report."""
    from fresh_solver.operations.checks import HealthChecker

    checker = HealthChecker(timeout_s=args.timeout)
    names = [n.strip() for n in args.checks.split(",") if n.strip()] if args.checks else None
    report = checker.generate_health_report(checker.run_all_checks(names))
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(f"overall: {report['status']}", file=sys.stderr)
        print(f"production: {production_line(report['production'])}", file=sys.stderr)
        for check in report["checks"]:
            flag = "*" if check["required"] else " "
            print(f" {flag} {check['status']:<8} {check['name']:<22} {check['message']}",
                  file=sys.stderr)
        print("   (* required: decides critical)", file=sys.stderr)
    return 0 if report["status"] in ("healthy", "warning") else 1


def production_line(snapshot: dict) -> str:
    """The production health snapshot in one line: score, solves and window (or the error)."""
    if "error" in snapshot:
        return snapshot["error"]
    score = snapshot.get("overall_health_score")
    return (f"health score {'-' if score is None else f'{score:g}'} of 100 over "
            f"{snapshot['solves']} solve(s) in the last {snapshot['window_minutes']:g} min "
            f"({snapshot['status']})")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve /livez, /readyz, /health and /metrics until interrupted."""
    from fresh_solver.errors import InputError
    from fresh_solver.operations.server import serve

    try:
        server = serve(args.host, args.port, interval_s=args.interval)
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = server.server_address[:2]
    print(f"serving http://{host}:{port}/health (also /livez /readyz /metrics); "
          "Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()
        server.service.stop()


def cmd_alert(args: argparse.Namespace) -> int:
    """Test a channel, list the alert log, or run one evaluation round."""
    from fresh_solver.operations.alerts import AlertManager
    from fresh_solver.operations.channels import DeliveryError

    if args.action == "test":
        try:
            with alert_log_on_stderr():
                AlertManager().send_test(args.channel)
        except DeliveryError as exc:
            print(f"fresh-solver alert: not delivered through {args.channel!r}: {exc}",
                  file=sys.stderr)
            return 1
        print(f"delivered a test alert through {args.channel!r}", file=sys.stderr)
        return 0
    if args.action == "list":
        history = AlertManager().history(args.limit)
        if args.json:
            print(json.dumps(history, default=str))
        else:
            print("\n".join(map(alert_line, history)) or "no alerts")
        return 0
    from fresh_solver.operations import cycle  # run: what the health DAG does, once

    report = cycle.check()
    print(json.dumps({"status": report["status"], **cycle.alert(report)}, default=str))
    return 0


def alert_line(alert: dict) -> str:
    """One alert of the log for people: when, state, rule, template, summary, deliveries."""
    seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(alert["last_seen_at"]))
    deliveries = ", ".join(f"{d['channel']} {d['state']}" for d in alert["deliveries"])
    return (f"{seen}  {alert['status']:<8} {alert['severity']:<8} {alert['rule']}"
            f"{' [' + alert['template_id'] + ']' if alert['template_id'] else ''}: "
            f"{alert['summary']}  ({deliveries or 'no deliveries'})")


@contextlib.contextmanager
def alert_log_on_stderr() -> Iterator[None]:
    """The log channel writes to the ``fresh_solver.alerts`` logger; while a command runs,
    that goes to stderr too, so `alert test log` shows what it sent."""
    logger = logging.getLogger("fresh_solver.alerts")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def add_commands(sub) -> None:
    """Add `health`, `serve` and `alert` to the `fresh-solver` parser."""
    p = sub.add_parser("health", help="run the health checks (exit 1 when critical/unknown)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--checks", help="comma-separated check names (default: all)")
    p.add_argument("--timeout", type=seconds, default=None,
                   help="seconds per check (default FRESH_SOLVER_CHECK_TIMEOUT_S or 20)")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("serve", help="HTTP /livez /readyz /health /metrics")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8787, help="port (default 8787; 0 = any free)")
    p.add_argument("--interval", type=seconds, default=30.0,
                   help="seconds between check rounds (default 30)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("alert", help="alert channels and the alert log")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("test", help="send a test alert through one configured channel")
    a.add_argument("channel")
    a = actions.add_parser("list", help="the alert log, most recent first")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true")
    actions.add_parser("run", help="run the checks, evaluate the rules and send (once)")
    p.set_defaults(func=cmd_alert)
