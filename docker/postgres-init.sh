#!/bin/sh
# Run once by the postgres image, on an empty data volume (/docker-entrypoint-initdb.d): one
# role and one database per service, each role's password from docker/.env. psql quotes the
# passwords itself (:'var'), so any character is safe here; the URLs in compose.yaml need
# URL-safe ones anyway (docker/.env.example says how to make them).
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v airflow_password="$DB_PASSWORD_AIRFLOW" \
  -v mlflow_password="$DB_PASSWORD_MLFLOW" \
  -v ops_password="$DB_PASSWORD_OPS" <<'SQL'
-- Airflow's metadata DB; the Celery result backend uses it too
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
-- MLflow's tracking + registry store, and its basic-auth users and permissions
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
-- fresh-solver's operations store (performance monitor, alerts): FRESH_SOLVER_DB_URL
CREATE ROLE fresh_solver LOGIN PASSWORD :'ops_password';
CREATE DATABASE fresh_solver OWNER fresh_solver;
SQL
