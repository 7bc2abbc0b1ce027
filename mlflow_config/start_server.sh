#!/usr/bin/env bash
# Start the MLflow tracking server + model registry that several processes or machines share.
#
#   mlflow_config/start_server.sh            # SQLite store under $FRESH_SOLVER_HOME, 127.0.0.1:5000
#   MLFLOW_BACKEND_STORE_URI=postgresql://postgres@127.0.0.1:5432/mlflow \
#   MLFLOW_PORT=5001 mlflow_config/start_server.sh
#
# With access control (mlflow_config/README.md, "Access control"):
#
#   MLFLOW_AUTH=1 MLFLOW_AUTH_ADMIN_PASSWORD=... FRESH_SOLVER_REVIEWERS=alice,bob \
#   MLFLOW_BACKEND_STORE_URI=postgresql://... mlflow_config/start_server.sh
#
# runs the fresh-solver-auth app (MLflow's basic-auth + "only reviewers promote to Production")
# with its users in the same database as the store, configured by an ini written to
# $FRESH_SOLVER_HOME/mlflow-auth.ini (MLFLOW_AUTH_DATABASE_URI overrides the database).
#
# Then point every client at it: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
# It binds 127.0.0.1 unless MLFLOW_HOST says otherwise. Stop it by its process group
# (kill -- -PGID): its worker processes outlive a stopped main process.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
home="${FRESH_SOLVER_HOME:-$here/.fresh_solver}"
mlflow="${MLFLOW:-$here/.venv/bin/mlflow}"
store="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$home/mlflow-server.db}"
# MLflow's registry on PostgreSQL needs psycopg2: under SQLAlchemy's default driver (psycopg 3)
# archiving on promotion fails ("operator does not exist: integer <> character varying").
store="${store/#postgresql:\/\//postgresql+psycopg2://}"
mkdir -p "$home/server-artifacts"
# MLflow retries a PostgreSQL database that does not exist forever: create it (or say why not).
python="$(dirname "$mlflow")/python"
for url in "$store" "${MLFLOW_AUTH_DATABASE_URI:-}"; do
  if [[ "$url" == postgresql* ]]; then
    "$python" -m fresh_solver.devstack ensure-database "$url" || exit 2
  fi
done
# One worker and no job execution: ready in ~13 s at ~0.5 GB instead of ~40 s and ~2 GB.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
app=()
if [[ "${MLFLOW_AUTH:-0}" == 1 ]]; then
  export MLFLOW_AUTH_CONFIG_PATH="$home/mlflow-auth.ini"
  auth_db="${MLFLOW_AUTH_DATABASE_URI:-$store}"
  # The ini may hold a database password: owner-only. configparser reads % as interpolation.
  (umask 077 && cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
# Written by mlflow_config/start_server.sh (MLFLOW_AUTH=1); rewritten at every start.
[mlflow]
default_permission = READ
database_uri = ${auth_db//%/%%}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Each worker remembers a checked password this long: uncached, every request pays a PBKDF2
# hash (~1 s on a busy 2-core machine). Password changes through the API apply at once on
# the worker that made them, on other workers within this time.
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_S:-60}
INI
  )
  # The CSRF key of MLflow's sign-up form; servers behind one address must share it.
  if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
    MLFLOW_FLASK_SERVER_SECRET_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
    export MLFLOW_FLASK_SERVER_SECRET_KEY
  fi
  # Each worker creates the admin (from MLFLOW_AUTH_ADMIN_PASSWORD) on the first start. One
  # worker failing at that stops the server with MLflow's error; several would be restarted
  # in a loop, so then do it once here first (it costs an MLflow import, ~10 s).
  if (( ${MLFLOW_WORKERS:-1} > 1 )); then
    "$python" -c \
      'from mlflow.server.auth import bootstrap_admin_user; bootstrap_admin_user()'
  fi
  app=(--app-name fresh-solver-auth)
fi
exec "$mlflow" server "${app[@]}" \
  --backend-store-uri "$store" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-$home/server-artifacts}" \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-127.0.0.1}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}"
