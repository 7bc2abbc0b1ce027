"""The MLflow Model Registry of blessed parameter sets: register, promote, reconcile."""
