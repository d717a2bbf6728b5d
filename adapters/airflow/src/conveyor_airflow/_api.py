"""A small client of Airflow 3's REST API (``/api/v2``): find a DAG, trigger it, follow its run."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from conveyor.exceptions import StackError

FINISHED = frozenset({"success", "failed"})
"""DAG run states after which nothing changes."""


class AirflowAPI:
    """Airflow's REST API with a JWT from ``/auth/token``.

    Args:
        url: the API server (``http://host:8080``).
        username, password: credentials (resolved secret values); both None
            for an API that needs none.
        timeout: seconds per request.
        component: the orchestrator's name, for messages.
    """

    def __init__(self, url: str, username: str | None, password: str | None, *, timeout: float, component: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.component = component
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise StackError(
                f"cannot reach the Airflow API at {self.url}: {reason}",
                f"start Airflow's api-server, or fix api_url of orchestrator {self.component!r}",
            ) from None

    def login(self) -> None:
        """Get a token (or, without credentials, check that the API answers).

        Raises:
            StackError: the API is unreachable or refuses the credentials.
        """
        if self.username is None and self.password is None:
            self._check(self._send("GET", "/api/v2/version"), "/api/v2/version")
            return
        if not self.username or not self.password:
            raise StackError(
                f"orchestrator {self.component!r} has only one of api_username and api_password",
                "set both, or neither for an API without authentication",
            )
        response = self._send("POST", "/auth/token", json={"username": self.username, "password": self.password})
        if response.status_code in (401, 403):
            raise StackError(
                f"Airflow at {self.url} refused the credentials of orchestrator {self.component!r} "
                f"(HTTP {response.status_code})",
                "check the secret that api_username/api_password refer to",
            )
        token = self._check(response, "/auth/token").get("access_token")
        if not token:
            raise StackError(f"Airflow at {self.url} answered /auth/token without an access token")
        self._token = token

    def _request(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> Any:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            response = self._send(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and self._token and attempt == 1:
                self.login()  # the token expired
                continue
            break
        if response.status_code in allow:
            return response
        self._check(response, path)
        return response

    def _check(self, response: Any, path: str) -> Any:
        if response.status_code in (401, 403):
            raise StackError(
                f"Airflow at {self.url} refused orchestrator {self.component!r} access to {path} "
                f"(HTTP {response.status_code})",
                "check the secret that api_username/api_password refer to, and that user's role",
            )
        if response.status_code >= 400:
            detail = _detail(response)
            raise StackError(f"Airflow at {self.url} answered {path} with HTTP {response.status_code}: {detail}")
        try:
            return response.json()
        except ValueError:
            raise StackError(f"Airflow at {self.url} answered {path} with something that is not JSON") from None

    # -- DAGs and runs -------------------------------------------------------------------
    def dag_details(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details, or None while Airflow does not know it."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/details"
        response = self._request("GET", path, allow=(404,))
        return None if response.status_code == 404 else self._check(response, path)

    def import_error(self, filename: str) -> str | None:
        """The last line of the import error Airflow reports for a DAG file, if any."""
        data = self._check(self._request("GET", "/api/v2/importErrors", params={"limit": 1000}), "/api/v2/importErrors")
        for item in data.get("import_errors", []):
            if str(item.get("filename", "")).endswith(filename):
                lines = [line for line in str(item.get("stack_trace", "")).splitlines() if line.strip()]
                return lines[-1].strip() if lines else "import error"
        return None

    def wait_for_dag(self, dag_id: str, marker: str, filename: str, *, timeout: float, poll: float) -> dict[str, Any]:
        """Wait until Airflow has parsed the DAG file whose ``doc_md`` holds ``marker``.

        Raises:
            StackError: the file does not import, or Airflow did not parse it in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            details = self.dag_details(dag_id)
            if details is not None and marker in (details.get("doc_md") or ""):
                return details
            error = self.import_error(filename)
            if error is not None:
                raise StackError(f"Airflow cannot import DAG file {filename}: {error}")
            if time.monotonic() >= deadline:
                raise StackError(
                    f"Airflow did not load DAG {dag_id!r} within {timeout:g} s",
                    "check that the dag-processor runs and reads the dags folder, or raise parse_timeout",
                )
            time.sleep(poll)

    def pool_exists(self, pool: str) -> bool:
        """Whether Airflow has a pool of this name."""
        response = self._request("GET", f"/api/v2/pools/{quote(pool, safe='')}", allow=(404,))
        return response.status_code != 404

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}"
        self._check(self._request("PATCH", path, json={"is_paused": False}), path)

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a DAG run now with this run id."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        return self._check(self._request("POST", path, json=body), path)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """A DAG run."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        return self._check(self._request("GET", path), path)

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float | None, poll: float) -> str:
        """Poll a DAG run until it ends or ``timeout`` passes; returns its last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id).get("state"))
            if state in FINISHED or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(poll)


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = str(detail if detail is not None else response.text or "").strip().splitlines()
    return text[0][:200] if text else "(no detail)"
