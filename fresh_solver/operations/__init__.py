"""Production operations: the solve monitor, health checks, alerting and the health endpoint.

Everything here shares the operations store (:mod:`fresh_solver.operations.store`), so a
solving process, the `health` command, the `serve` endpoint and the health DAG see the same
solves, fallbacks and alerts. Nothing here imports Airflow.
"""
