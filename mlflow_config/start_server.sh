#!/usr/bin/env bash
# Start the MLflow tracking server + model registry that several processes or machines share.
#
#   mlflow_config/start_server.sh            # SQLite store under $FRESH_SOLVER_HOME, 127.0.0.1:5000
#   MLFLOW_BACKEND_STORE_URI=postgresql://postgres@127.0.0.1:5432/mlflow \
#   MLFLOW_PORT=5001 mlflow_config/start_server.sh
#
# Then point every client at it: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
# It binds 127.0.0.1 unless MLFLOW_HOST says otherwise. Stop it by its process group
# (kill -- -PGID): its worker processes outlive a stopped main process.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
home="${FRESH_SOLVER_HOME:-$here/.fresh_solver}"
mkdir -p "$home/server-artifacts"
# One worker and no job execution: ready in ~13 s at ~0.5 GB instead of ~40 s and ~2 GB.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
exec "${MLFLOW:-$here/.venv/bin/mlflow}" server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:///$home/mlflow-server.db}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-$home/server-artifacts}" \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-127.0.0.1}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}"
