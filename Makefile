# Two entry points for a fresh machine with only Python 3.11 and pip:
#   make demo   the main job on the embedded defaults: the whole parameter lifecycle
#   make test   the whole test suite (what CI runs)
# Also: make solve-example (one quick solve), make up / make down (MLflow + Airflow UIs).
PYTHON ?= python3.11
VENV := .venv
UV := .uv-bootstrap/bin/uv
BIN := $(VENV)/bin
OUT ?= out
DEMO_ARGS ?=
DEMO_CONF ?= {}

.PHONY: venv peers-venv demo solve-example up up-distributed down test browser bench-core clean

# uv is bootstrapped into .uv-bootstrap/, so nothing is installed outside the project.
$(UV):
	$(PYTHON) -m venv .uv-bootstrap
	.uv-bootstrap/bin/pip install --quiet uv

$(BIN)/fresh-solver: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	touch $@

venv: $(BIN)/fresh-solver

# The peer tuner (cpsat-autotune) for the tuning benchmark, in its own environment from the
# same lock file: only the `peers` group, never the project (DESIGN §9 on its 9.15 fixes).
PEERS_VENV := .venv-peers
$(PEERS_VENV)/bin/python: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(PEERS_VENV) $(UV) sync --frozen --only-group peers \
		--no-install-project --python $(PYTHON)
	touch $@

peers-venv: $(PEERS_VENV)/bin/python

# Generate instances, run the retune DAG (Airflow, SQLite), promote, solve from Production.
demo: venv
	$(BIN)/python -m fresh_solver.demo --dags dags --conf '$(DEMO_CONF)' $(DEMO_ARGS)

solve-example: venv
	mkdir -p $(OUT)
	$(BIN)/fresh-solver solve fresh_solver/examples/bracket_line.json --time-limit 20 \
		--out $(OUT)/bracket_line.schedule.json --gantt $(OUT)/bracket_line.gantt.png
	$(BIN)/fresh-solver check fresh_solver/examples/bracket_line.json \
		$(OUT)/bracket_line.schedule.json

# MLflow UI (the main job's store) and Airflow (this dags/ folder) on 127.0.0.1, in the
# background; `make down` stops them by process session.
MLFLOW_PORT ?= 5000
AIRFLOW_PORT ?= 8080
up: venv
	$(BIN)/python -m fresh_solver.devstack up --dags dags \
		--mlflow-port $(MLFLOW_PORT) --airflow-port $(AIRFLOW_PORT)

# The same DAGs on PostgreSQL + CeleryExecutor (Redis) with WORKERS trial workers and the MLflow
# server on PostgreSQL (docs/distributed.md); `make down` stops it too. STACK names its
# databases, Redis keys and workers (a second stack needs its own name and FRESH_SOLVER_HOME);
# MLFLOW_AUTH=1 turns on MLflow's access control; WORKER_CPUS='0 1' pins each trial worker.
WORKERS ?= 2
STACK ?= fresh_solver
MLFLOW_AUTH ?=
WORKER_CPUS ?=
up-distributed: venv
	$(BIN)/python -m fresh_solver.devstack up --distributed --workers $(WORKERS) --dags dags \
		--mlflow-port $(MLFLOW_PORT) --airflow-port $(AIRFLOW_PORT) --name $(STACK) \
		$(if $(MLFLOW_AUTH),--mlflow-auth) $(if $(WORKER_CPUS),--worker-cpus '$(WORKER_CPUS)')

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m fresh_solver.devstack down; fi

test: venv browser
	$(BIN)/ruff check fresh_solver tests dags benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# The UI end-to-end test needs Debian's Chromium and its driver. CI (which runs as root with
# FRESH_SOLVER_REQUIRE_SERVICES=1) installs them; elsewhere the test skips and says how.
browser:
	@if [ "$$FRESH_SOLVER_REQUIRE_SERVICES" = 1 ] && ! command -v chromedriver >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null; \
	fi

bench-core: venv
	$(BIN)/python -m benchmarks.core_benchmark --out $(OUT)/core_benchmark

clean:
	rm -rf $(VENV) .uv-bootstrap $(OUT) .pytest_cache .ruff_cache
