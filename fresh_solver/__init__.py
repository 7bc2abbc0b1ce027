"""fresh-solver: scheduling on OR-Tools CP-SAT with parameters managed like ML models."""

import os

# MLflow 3.17's telemetry thread writes os.environ while its HTTP client reads it: tasks talking
# to a tracking server failed at random with KeyError '_MLFLOW_TELEMETRY_SESSION_ID' (seen in
# the distributed tests). It would also phone home. Off unless the user asks for it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
