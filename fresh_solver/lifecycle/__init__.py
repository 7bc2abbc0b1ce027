"""The parameter lifecycle as Airflow-free task functions with JSON-able arguments.

The DAGs in ``dags/`` are wiring: every task calls one function here. Each function is
idempotent (a retried task finds what its first attempt recorded in MLflow) and raises
:class:`fresh_solver.errors.InputError` for bad input, which the DAG fails without retrying.
"""
