"""Accounts of the shared MLflow server (``mlflow_config/``, ``MLFLOW_AUTH=1``), set up by its
admin from a credentials file kept outside the repository:

    MLFLOW_TRACKING_URI=http://mlflow:5000 MLFLOW_TRACKING_USERNAME=admin \\
    MLFLOW_TRACKING_PASSWORD=... python -m fresh_solver.registry.accounts --credentials FILE

FILE (JSON, or TOML when it ends in ``.toml``)::

    [service]            # the DAGs' account, user fresh-solver-service
    password = "..."
    [loader]             # the production loader's account, user fresh-solver-loader
    password = "..."
    [reviewers]          # optional: username = password, one per reviewer
    alice = "..."

What each account may do (the server's ``default_permission`` is READ):

- ``fresh-solver-loader``: reads, nothing more (no grant).
- ``fresh-solver-service``: role ``fresh-solver-service``, EDIT on every experiment and
  registered model: create runs, log params and artifacts, register versions, move them to
  Staging. (It owns what it creates, as MLflow grants MANAGE to a creator.) It cannot make a
  version Production: the server's reviewer rule (``fresh_solver.registry.server_auth``) lets it
  only mirror a promotion already made, which is what reconcile does.
- reviewers: role ``fresh-solver-reviewer``, EDIT on every experiment and registered model
  (promotion writes tags and history, an override records a run). They promote only if the
  server also names them in ``FRESH_SOLVER_REVIEWERS``; the command prints that line.

Idempotent: a user that exists gets the file's password (the file is the truth), roles and
their grants are added where missing; each line of output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError

SERVICE_USER = "fresh-solver-service"
LOADER_USER = "fresh-solver-loader"
SERVICE_ROLE = "fresh-solver-service"
REVIEWER_ROLE = "fresh-solver-reviewer"
WORKSPACE = "default"  # where basic-auth keeps grants when workspaces are off
EDIT_EVERYTHING = (("experiment", "*", "EDIT"), ("registered_model", "*", "EDIT"))
REPO = Path(__file__).resolve().parents[2]


def read_credentials(path: Path) -> dict[str, str]:
    """``{username: password}`` from the credentials file, reviewers included; refuses a file
    inside the repository checkout, where a password could end up committed."""
    path = Path(path).expanduser().resolve()
    if path.is_relative_to(REPO):
        raise InputError(f"--credentials: {path} is inside the repository ({REPO}); keep "
                         "passwords outside it")
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"--credentials: cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise InputError(f"--credentials: {path} is not valid {kind}: {exc}") from None
    return _users(data, path)


def _users(data: Any, path: Path) -> dict[str, str]:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise InputError(f"--credentials: {path} must hold a table/object")
    users: dict[str, str] = {}
    for section, username in (("service", SERVICE_USER), ("loader", LOADER_USER)):
        password = data.get(section, {}).get("password") \
            if isinstance(data.get(section), dict) else None
        if not isinstance(password, str) or not password:
            problems.append(f"--credentials: {path}: missing {section}.password")
        else:
            users[username] = password
    reviewers = data.get("reviewers", {})
    if not isinstance(reviewers, dict):
        problems.append(f"--credentials: {path}: reviewers must map usernames to passwords")
        reviewers = {}
    for username, password in reviewers.items():
        if username in (SERVICE_USER, LOADER_USER):
            problems.append(f"--credentials: {path}: reviewer {username!r} is a service "
                            "account's name")
        elif not isinstance(password, str) or not password:
            problems.append(f"--credentials: {path}: reviewers.{username} needs a password")
        else:
            users[username] = password
    unknown = sorted(set(data) - {"service", "loader", "reviewers"})
    if unknown:
        problems.append(f"--credentials: {path}: unknown section(s) {', '.join(unknown)}")
    if problems:
        raise InputError(problems)
    return users


def set_up(client, users: dict[str, str], out=None) -> None:
    """Create or update the users, the two roles and their grants, and assign them, through
    MLflow's ``AuthServiceClient`` (as the admin); says what it did on ``out`` (stdout)."""
    from mlflow.exceptions import MlflowException

    out = out or sys.stdout

    for username, password in users.items():
        try:
            client.create_user(username, password)
            out.write(f"user {username}: created\n")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            client.update_user_password(username, password)
            out.write(f"user {username}: existed, password set from the file\n")
    reviewers = [u for u in users if u not in (SERVICE_USER, LOADER_USER)]
    for role, members in ((SERVICE_ROLE, [SERVICE_USER]), (REVIEWER_ROLE, reviewers)):
        role_id = _ensure_role(client, role, out)
        for username in members:
            if any(r.id == role_id for r in client.list_user_roles(username)):
                out.write(f"user {username}: already has role {role}\n")
            else:
                client.assign_role(username, role_id)
                out.write(f"user {username}: given role {role}\n")
    out.write(f"user {LOADER_USER}: no grant (reads by the server's default_permission)\n")
    names = ",".join(reviewers) if reviewers else "(none: only admins review)"
    out.write(f"reviewers: start the server with FRESH_SOLVER_REVIEWERS={names}\n")


def _ensure_role(client, name: str, out) -> int:
    """The role's id, creating it and adding its grants (EDIT on every experiment and
    registered model) where missing."""
    role = next((r for r in client.list_roles(WORKSPACE) if r.name == name), None)
    if role is None:
        role = client.create_role(WORKSPACE, name, "fresh-solver (fresh_solver.registry."
                                  "accounts): EDIT on every experiment and registered model")
        out.write(f"role {name}: created\n")
    have = {(p.resource_type, p.resource_pattern, p.permission)
            for p in client.list_role_permissions(role.id)}
    for grant in EDIT_EVERYTHING:
        if grant not in have:
            client.add_role_permission(role.id, *grant)
            out.write(f"role {name}: granted {grant[2]} on {grant[0]} {grant[1]}\n")
    return role.id


def main(argv: list[str] | None = None) -> int:
    """The command: bad input (file, credentials, a server that refuses the admin) exits 2,
    an unreachable server 1."""
    parser = argparse.ArgumentParser(prog="python -m fresh_solver.registry.accounts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--credentials", required=True, type=Path,
                        help="JSON or .toml file with the passwords, outside the repository")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                        help="the server (default $MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    try:
        users = read_credentials(args.credentials)
        uri = args.tracking_uri or ""
        if not uri.startswith(("http://", "https://")):
            raise InputError(f"--tracking-uri / MLFLOW_TRACKING_URI: {uri or '(unset)'} is "
                             "not an MLflow server (http:// or https://)")
        if not (os.environ.get("MLFLOW_TRACKING_USERNAME")
                and os.environ.get("MLFLOW_TRACKING_PASSWORD")):
            raise InputError("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to the "
                             "MLflow admin's credentials")
    except InputError as exc:
        print("\n".join(f"error: {p}" for p in exc.problems), file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client
    from requests.exceptions import RequestException

    try:
        set_up(get_app_client("basic-auth", tracking_uri=uri), users)
    except MlflowException as exc:
        status = exc.get_http_status_code()
        print(f"error: {uri} refused: {exc.message}", file=sys.stderr)
        if status in (401, 403):
            print("error: MLFLOW_TRACKING_USERNAME/PASSWORD must be the MLflow admin's",
                  file=sys.stderr)
        return 2 if status < 500 else 1
    except RequestException as exc:
        print(f"error: cannot reach {uri}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
