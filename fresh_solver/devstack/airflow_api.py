"""A small client of Airflow's REST API, what the tests and the demo's stack checks use to
trigger runs and read their task instances as a user's browser would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request


class AirflowAPI:
    """A minimal client of Airflow 3's REST API (stdlib only): enough to trigger a DAG run and
    follow it from tests and scripts without the airflow package or requests."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    def token(self) -> str:
        """A JWT from the auth manager (POST /auth/token), cached until a request gets 401."""
        if self._token is None:
            body = self._call("POST", "/auth/token",
                              {"username": self.username, "password": self.password},
                              auth=False)
            self._token = body["access_token"]
        return self._token

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True,
              retry: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            if e.code == 401 and auth and retry:
                self._token = None
                return self._call(method, path, body, auth, retry=False)
            detail = e.read().decode(errors="replace")[:2000]
            raise AirflowAPIError(e.code, f"{method} {path}: HTTP {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def health(self) -> dict:
        """The api-server's view of the metadata DB, scheduler, triggerer and dag-processor."""
        return self._call("GET", "/api/v2/monitor/health", auth=False)

    def dag(self, dag_id: str) -> dict:
        """The DAG's record (paused or not, last parsed, ...); 404 until it is parsed."""
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}")

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict:
        """Wait until the dag-processor has parsed and stored ``dag_id`` (404 before), since
        a DAG cannot be triggered or unpaused earlier."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowAPIError as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def set_pool(self, name: str, slots: int, description: str = "") -> dict:
        """Create pool ``name`` with ``slots`` slots, or resize it if it exists."""
        # Airflow 3.3 requires include_deferred in the PATCH body too (422 without it).
        body = {"name": name, "slots": slots, "description": description,
                "include_deferred": False}
        try:
            return self._call("PATCH", f"/api/v2/pools/{self._q(name)}", body)
        except AirflowAPIError as e:
            if e.status != 404:
                raise
        return self._call("POST", "/api/v2/pools", body)

    def unpause(self, dag_id: str) -> dict:
        """Unpause a DAG (new DAGs are paused by default, and runs of a paused DAG wait)."""
        return self._call("PATCH", f"/api/v2/dags/{self._q(dag_id)}?update_mask=is_paused",
                          {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Start a manual run now (``logical_date`` null, as Airflow 3 allows) and return its
        run id."""
        run = self._call("POST", f"/api/v2/dags/{self._q(dag_id)}/dagRuns",
                         {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict]:
        """The DAG's runs (the first 100), of one ``run_type`` (``scheduled``, ``manual``...)
        when given."""
        query = f"?limit=100&run_type={self._q(run_type)}" if run_type else "?limit=100"
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns{query}")["dag_runs"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        """One run's record, whose ``state`` :meth:`wait` polls."""
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}")

    def wait(self, dag_id: str, run_id: str, timeout: float = 300.0, poll: float = 1.0) -> str:
        """Poll a run until it is finished; its final state (``success`` or ``failed``).
        TimeoutError when still queued or running after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
             map_index: int = -1):
        """A task's XCom value (its return value by default), deserialised."""
        path = (f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                f"{self._q(task_id)}/xcomEntries/{self._q(key)}?map_index={map_index}"
                "&deserialize=true&stringify=false")
        return self._call("GET", path)["value"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """All task instances of a run, mapped ones one row per ``map_index`` (pages joined)."""
        rows: list[dict] = []
        base = f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances"
        while True:
            page = self._call("GET", f"{base}?limit=100&offset={len(rows)}")
            rows += page["task_instances"]
            if not page["task_instances"] or len(rows) >= page["total_entries"]:
                return rows


class AirflowAPIError(RuntimeError):
    """An HTTP error from the Airflow API, with its status and response body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
