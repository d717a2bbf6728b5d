"""The ``mlflow`` experiment tracker: an active MLflow run inside each step that names it.

One MLflow experiment per pipeline, one parent run per pipeline run, and one
nested run per step attempt, tagged with conveyor's run, step and code
version. The step's own ``mlflow.log_*`` calls land in its nested run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.exceptions import ConveyorError
from conveyor.secrets import SecretReference
from conveyor.stack import ExperimentTracker

# Tags on MLflow runs that point back at conveyor.
TAG_RUN_ID = "conveyor.run_id"
TAG_RUN_NAME = "conveyor.run_name"
TAG_PIPELINE = "conveyor.pipeline"
TAG_STEP_ID = "conveyor.step_id"
TAG_STEP_NAME = "conveyor.step_name"
TAG_ATTEMPT = "conveyor.attempt"
TAG_CODE_HASH = "conveyor.code_hash"
TAG_CODE_COMMIT = "conveyor.code_commit"
TAG_KIND = "conveyor.kind"

# Steps of one run side by side in one process (the local orchestrator's threads)
# must find or create the same parent run: one at a time here.
_PARENT_LOCK = threading.Lock()
_ENV_LOCK = threading.Lock()


class MLflowTrackerError(ConveyorError):
    """The MLflow tracking server cannot be used (unreachable, wrong credential)."""


class MLflowExperimentTrackerConfig(BaseModel):
    """Config of the ``mlflow`` experiment tracker."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str
    """An MLflow tracking server (``http://127.0.0.1:5001``) or a local store (``sqlite:///path/mlflow.db``)."""
    username: str | None = None
    """User name for a server that asks for one (a ``{{secret.key}}`` reference or plain text)."""
    password: SecretReference | None = None
    """Password, as a ``{{secret.key}}`` reference."""
    experiment_name: str | None = None
    """The experiment every pipeline logs to (default: one experiment per pipeline, named after it)."""
    timeout: float = 10.0
    """Seconds to wait for the server before the step fails."""


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The address of an MLflow run: its page on a server, else ``mlflow-run:ID`` with the store."""
    if _is_http(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{tracking_uri} run {run_id} (experiment {experiment_id})"


class MLflowExperimentTracker(ExperimentTracker):
    """Makes an MLflow run active inside the steps that name this tracker."""

    # -- the server ----------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if self.config.username is None:
            return {}
        raw = f"{self.config.username}:{self.config.password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def check_server(self) -> None:
        """Ask the server for one experiment, so that an unreachable server or a wrong credential is one line.

        Raises:
            MLflowTrackerError: no answer, or the server refused the credential.
        """
        uri = self.config.tracking_uri
        if not _is_http(uri):
            return
        where = f"experiment-tracker {self.name!r}: MLflow server {uri}"
        url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:  # noqa: S310 - http(s) only
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # the error holds the response's socket
            if exc.code in (401, 403):
                raise MLflowTrackerError(
                    f"{where} refused the credential (HTTP {exc.code})",
                    f"check --username/--password: conveyor experiment-tracker describe {self.name}",
                ) from None
            raise MLflowTrackerError(f"{where} answered HTTP {exc.code}", "is it an MLflow tracking server?") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MLflowTrackerError(
                f"{where} is unreachable ({reason})",
                f"start it, or fix the URI: conveyor experiment-tracker update {self.name} --tracking-uri URI",
            ) from None

    @contextlib.contextmanager
    def _credentials(self) -> Iterator[None]:
        # MLflow's client reads credentials from the environment only.
        if self.config.username is None:
            yield
            return
        with _ENV_LOCK:
            os.environ["MLFLOW_TRACKING_USERNAME"] = self.config.username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = self.config.password or ""
        yield

    def client(self) -> Any:
        """An ``mlflow.MlflowClient`` of this tracker's store."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.config.tracking_uri)

    # -- experiments and runs ------------------------------------------------------
    def experiment_id(self, pipeline_name: str) -> str:
        """The id of the experiment a pipeline logs to, created on first use."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        name = self.config.experiment_name or pipeline_name
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # another step created it meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _runs(self, experiment_id: str, **tags: str) -> list[Any]:
        clauses = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items())
        runs: list[Any] = self.client().search_runs([experiment_id], filter_string=clauses, max_results=1000)
        return runs

    def parent_run_id(self, context: Any, experiment_id: str) -> str:
        """The MLflow run of the pipeline run, created by its first step."""
        with _PARENT_LOCK:
            key = {TAG_RUN_ID: context.run_id, TAG_KIND: "pipeline_run"}
            found = self._runs(experiment_id, **key)
            if not found:
                tags = {**key, TAG_RUN_NAME: context.run_name, TAG_PIPELINE: context.pipeline_name}
                if context.code_commit:
                    tags[TAG_CODE_COMMIT] = context.code_commit
                self.client().create_run(experiment_id, run_name=context.run_name, tags=tags)
                found = self._runs(experiment_id, **key)
            # Steps in other processes may have raced: all of them settle on the oldest parent.
            found.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
            return str(found[0].info.run_id)

    def end_orphans(self, context: Any, experiment_id: str) -> list[str]:
        """End FAILED the runs of earlier attempts of this step that never ended (a killed process)."""
        ended = []
        for run in self._runs(experiment_id, **{TAG_RUN_ID: context.run_id, TAG_STEP_ID: context.step_id}):
            if run.info.status == "RUNNING":
                self.client().set_terminated(run.info.run_id, status="FAILED")
                ended.append(str(run.info.run_id))
        return ended

    def _settle_parent(self, experiment_id: str, parent_id: str, context: Any) -> None:
        # The parent's status follows the last attempt of each step that ran so far.
        latest: dict[str, Any] = {}
        for run in self._runs(experiment_id, **{TAG_RUN_ID: context.run_id}):
            step_id = run.data.tags.get(TAG_STEP_ID)
            if step_id is None:
                continue
            attempt = int(run.data.tags.get(TAG_ATTEMPT, "0"))
            if step_id not in latest or attempt >= int(latest[step_id].data.tags.get(TAG_ATTEMPT, "0")):
                latest[step_id] = run
        statuses = {r.info.status for r in latest.values()}
        if "RUNNING" in statuses:
            return
        self.client().set_terminated(parent_id, status="FAILED" if "FAILED" in statuses else "FINISHED")

    @contextlib.contextmanager
    def step_scope(self, context: Any) -> Iterator[None]:
        """An active MLflow run, nested under the pipeline run's, for the step's body.

        Raises:
            MLflowTrackerError: the server is unreachable or refuses the credential (before the body runs).
        """
        import mlflow

        self.check_server()
        with self._credentials():
            mlflow.set_tracking_uri(self.config.tracking_uri)
            experiment_id = self.experiment_id(context.pipeline_name)
            parent_id = self.parent_run_id(context, experiment_id)
            self.end_orphans(context, experiment_id)
            tags = {
                TAG_RUN_ID: context.run_id,
                TAG_RUN_NAME: context.run_name,
                TAG_PIPELINE: context.pipeline_name,
                TAG_STEP_ID: context.step_id,
                TAG_STEP_NAME: context.step_name,
                TAG_ATTEMPT: str(context.attempt),
                TAG_CODE_HASH: context.code_hash,
                TAG_KIND: "step_run",
            }
            if context.code_commit:
                tags[TAG_CODE_COMMIT] = context.code_commit
            active = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=context.step_id,
                parent_run_id=parent_id,
                nested=True,
                tags=tags,
            )
            run_id = active.info.run_id
            context.add_link("mlflow", run_url(self.config.tracking_uri, experiment_id, run_id))
            status = "FAILED"
            try:
                yield
                status = "FINISHED"
            finally:
                mlflow.end_run(status=status)
                with contextlib.suppress(Exception):  # the step's outcome matters more than the parent's status
                    self._settle_parent(experiment_id, parent_id, context)


def _quote(value: str) -> str:
    # MLflow's filter grammar: single-quoted strings, a quote doubled is not supported, so escape it.
    return value.replace("\\", "\\\\").replace("'", "\\'")
