#!/bin/sh
# The image's entry point: one image runs every service of docker/compose.yaml.
#
#   <any command>          run as given (mlflow server, airflow api-server|scheduler|
#                          dag-processor|triggerer, airflow celery worker, fresh-solver serve)
#   airflow-init           migrate Airflow's metadata DB and size the trial pool, then exit
#   airflow-trial-worker   the Celery worker of the queue fresh_solver_trials (one per machine)
#   mlflow-accounts        create/update the MLflow accounts of the tasks and the loader, exit
#
# Airflow's SimpleAuthManager reads its logins from a JSON file: when AIRFLOW_ADMIN_PASSWORD is
# set (the api-server only), the file is written from it, so the login comes from docker/.env
# instead of a password Airflow generates and prints into the log.
set -eu

# Concurrent trials that do not share this machine's cores (fresh_solver.lifecycle.pool).
trial_slots() {
  python -c 'from fresh_solver.lifecycle.pool import trial_pool_slots; print(trial_pool_slots())'
}

if [ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]; then
  python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
users = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
admin = users.split(",")[0].split(":")[0].strip()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as out:
    out.write(json.dumps({admin: os.environ["AIRFLOW_ADMIN_PASSWORD"]}) + "\n")
PY
  unset AIRFLOW_ADMIN_PASSWORD
fi

# With an --app-name other than basic-auth, MLflow leaves creating the admin user to each
# server worker: several racing on an empty auth database, or failing in a restart loop. Once
# here first (a no-op when the admin exists).
if [ "${1:-}" = mlflow ] && [ "${2:-}" = server ] && [ -n "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
  python -c 'from mlflow.server.auth import bootstrap_admin_user; bootstrap_admin_user()'
fi

case "${1:-}" in
  airflow-init)
    airflow db migrate
    # The pool holds the trial workers' slots: this machine's, unless TRIAL_POOL_SLOTS says
    # otherwise (the sum over several worker machines).
    slots="${TRIAL_POOL_SLOTS:-}"
    [ -n "$slots" ] || slots="$(trial_slots)"
    exec airflow pools set fresh_solver_trials "$slots" \
      "fresh-solver trials: cores // the most CP-SAT workers a trial may use"
    ;;
  airflow-trial-worker)
    # Every task that measures time goes to this queue; its concurrency is what this
    # machine's cores hold, so time-measuring tasks never share cores.
    concurrency="$(trial_slots)"
    exec airflow celery worker --queues fresh_solver_trials --concurrency "$concurrency"
    ;;
  mlflow-accounts)
    # fresh_solver.registry.accounts reads the passwords from a file: a private temporary one.
    credentials="$(mktemp --suffix=.json)"
    trap 'rm -f "$credentials"' EXIT
    python - "$credentials" <<'PY'
import json
import os
import sys

with open(sys.argv[1], "w") as out:
    json.dump({"service": {"password": os.environ["SERVICE_ACCOUNT_PASSWORD"]},
               "loader": {"password": os.environ["LOADER_ACCOUNT_PASSWORD"]}}, out)
PY
    python -m fresh_solver.registry.accounts --credentials "$credentials"
    exit 0
    ;;
esac
exec "$@"
