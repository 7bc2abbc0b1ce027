"""What asking the registry may raise that is not a bug: the registry's or the network's fault.

A production solve falls back on these (DESIGN §6), a health check reports them, the facade's
workflow skips its registry step. Importing this module is free: MLflow and requests are
imported when an error is caught, by which time the call that raised loaded them anyway.
"""

from __future__ import annotations


def registry_errors() -> tuple[type[BaseException], ...]:
    """MLflow's client's errors, the network's, and a malformed answer."""
    import json

    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return (MlflowException, RequestException, OSError, json.JSONDecodeError)
