"""The REST implementation of the metadata store: every call is one request to a conveyor server."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.constants import ENV_API_KEY, ENV_SERVER
from conveyor.exceptions import NotFoundError
from conveyor.stores._interface import ID_KINDS, MetadataStore, check_tags
from conveyor.stores._records import (
    ArtifactRecord,
    ComponentRecord,
    HookInvocationRecord,
    ModelAliasEventRecord,
    ModelRecord,
    ModelVersionLinkRecord,
    ModelVersionRecord,
    PipelineRecord,
    RunRecord,
    StackRecord,
    StepRunRecord,
)
from conveyor.stores.rest._http import ServerConnection, segment
from conveyor.stores.rest._wire import dump_values, load

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.stores.rest._secrets import RestSecretStore

RUN_TOKEN_PREFIX = "cvr_"
"""How a run-scoped step token starts (API keys start ``cvk_``, sessions ``cvs_``)."""


class RestStore(MetadataStore):
    """The metadata store behind a conveyor server.

    Args:
        url: the server's URL (``http://127.0.0.1:8237``).
        token: a session token, an API key or a run token (default: ``CONVEYOR_API_KEY``).

    Nothing is sent until the first call; an unreachable server is a one-line
    :class:`~conveyor.exceptions.StoreError` within a few seconds.
    """

    backend = "rest"

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.http = ServerConnection(url, token if token is not None else os.environ.get(ENV_API_KEY))
        self.url = self.http.url
        self._run_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        # Steps this store started, and the outputs of those it completed: a driver that runs a run's
        # steps in its own threads reads an upstream step's outputs from here instead of asking again.
        self._started: dict[str, tuple[str, str]] = {}
        self._completed: dict[tuple[str, str], dict[str, ArtifactRecord]] = {}

    @property
    def display_url(self) -> str:
        """The server's URL (it holds no password)."""
        return self.url

    def run_url(self, run_id: str) -> str | None:
        """The server dashboard's page of the run (what hooks and alerters link to)."""
        return f"{self.url}/runs/{segment(run_id)}"

    @property
    def token(self) -> str | None:
        """The credential this store sends."""
        return self.http.token

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.http.close()

    def _get(self, path: str, **query: Any) -> Any:
        return self.http.request("GET", path, query=query or None)

    def _post(self, path: str, body: Any = None) -> Any:
        return self.http.request("POST", path, {} if body is None else body)

    # -- step processes ---------------------------------------------------------------
    def child_environment(self, run_id: str | None = None) -> dict[str, str]:
        """The server's URL and a token scoped to ``run_id`` (minted once per run); never this store's own credential."""
        if run_id is None:
            return {ENV_SERVER: self.url}
        return {ENV_SERVER: self.url, ENV_API_KEY: self.run_token(run_id)}

    def run_token(self, run_id: str) -> str:
        """A token scoped to one run, for its step processes (the server mints it once per call of this store).

        Raises:
            PermissionDeniedError: this credential may not mint tokens (a viewer, a step token).
            RunSettledError: the run ended.
        """
        if self.token is not None and self.token.startswith(RUN_TOKEN_PREFIX):
            return self.token  # a step that starts steps of its own run passes its token on
        with self._lock:
            token = self._run_tokens.get(run_id)
        if token is None:
            token = str(self._post(f"/api/runs/{segment(run_id)}/token")["token"])
            with self._lock:
                self._run_tokens[run_id] = token
        return token

    def scope_to_run(self, run_id: str) -> None:
        """Exchange this store's credential (a ``runner`` API key) for a token scoped to the run."""
        if self.token is not None and self.token.startswith(RUN_TOKEN_PREFIX):
            return
        token = str(self._post(f"/api/runs/{segment(run_id)}/token")["token"])
        self.http.token = token
        os.environ[ENV_API_KEY] = token  # stores opened later in this process (secrets) use it too

    def _holds_run_token(self) -> bool:
        return self.token is not None and self.token.startswith(RUN_TOKEN_PREFIX)

    def whoami(self) -> dict[str, Any]:
        """``{"name", "role", "kind", "run_id"}`` of the credential this store sends."""
        return dict(self._get("/api/me"))

    # -- pipelines and deployments -----------------------------------------------------
    def get_or_create_pipeline(self, name: str) -> PipelineRecord:
        """The pipeline of this name, created on first use."""
        return load(PipelineRecord, self._post("/api/pipelines", {"name": name}))

    def get_pipeline(self, name_or_id: str) -> PipelineRecord:
        """A pipeline by name or id."""
        return load(PipelineRecord, self._get(f"/api/pipelines/{segment(name_or_id)}"))

    def list_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline, by name."""
        return [load(PipelineRecord, p) for p in self._get("/api/pipelines")]

    def save_deployment(self, deployment_id: str, pipeline_id: str, ir_json: str) -> None:
        """Store a deployment's canonical JSON under its content id (idempotent)."""
        self.http.request(
            "PUT", f"/api/deployments/{segment(deployment_id)}", {"pipeline_id": pipeline_id, "ir_json": ir_json}
        )

    def latest_deployment_id(self, pipeline_id: str) -> str | None:
        """The id of the newest deployment of a pipeline, if any."""
        found = self._get(f"/api/pipelines/{segment(pipeline_id)}/latest-deployment")["id"]
        return str(found) if found is not None else None

    def get_deployment_json(self, deployment_id: str) -> str:
        """The JSON of a stored deployment."""
        return str(self.http.request("GET", f"/api/deployments/{segment(deployment_id)}", raw=True))

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, **values: Any) -> RunRecord:
        """Insert a pipeline run."""
        if values.get("tags"):
            values["tags"] = check_tags(values["tags"])
        return load(RunRecord, self._post("/api/runs", {"values": dump_values(values)}))

    def join_run(self, run_key: str, **values: Any) -> RunRecord:
        """The run with this engine run key, created by whichever caller asks first."""
        return load(RunRecord, self._post("/api/runs/join", {"run_key": run_key, "values": dump_values(values)}))

    def update_run(self, run_id: str, *, only_if_status: str | None = None, **values: Any) -> bool:
        """Change fields of a run; with ``only_if_status`` only while it has that status."""
        answer = self.http.request(
            "PATCH",
            f"/api/runs/{segment(run_id)}",
            {"only_if_status": only_if_status, "values": dump_values(values)},
        )
        return bool(answer["changed"])

    def settle_run(
        self, run_id: str, status: str, *, error: str | None = None, running_steps: str | None = None
    ) -> bool:
        """Give a running run its final status (and end time) in one transaction."""
        answer = self._post(
            f"/api/runs/{segment(run_id)}/settle", {"status": status, "error": error, "running_steps": running_steps}
        )
        return bool(answer["settled"])

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or name."""
        _findable("run", run_id)
        return load(RunRecord, self._get(f"/api/runs/{segment(run_id)}"))

    def list_runs(
        self,
        pipeline_id: str | None = None,
        limit: int | None = None,
        *,
        status: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one pipeline, with one status, or with every tag of ``tags``."""
        tag = list(dict.fromkeys(tags))
        if any("\x00" in t for t in tag):
            return []  # no tag holds a NUL (and no URL can carry one): what a SQL store finds
        runs = self._get("/api/runs", pipeline_id=pipeline_id, limit=limit, status=status, tag=tag)
        return [load(RunRecord, r) for r in runs]

    def tag_run(self, run_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> tuple[str, ...]:
        """Add and remove tags of a run; returns its tags, sorted."""
        # Tags to add get the SQL store's one-line error before anything is sent.
        body = {"add": check_tags(add), "remove": list(remove)}
        answer = self._post(f"/api/runs/{segment(run_id)}/tags", body)
        return tuple(answer["tags"])

    def delete_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Delete a run with its step runs; returns its log files that nothing else refers to."""
        return list(self.http.request("DELETE", f"/api/runs/{segment(run_id)}", query={"force": force})["logs"])

    # -- step runs -----------------------------------------------------------------------
    def _step_path(self, run_id: str, step_id: str, action: str) -> str:
        return f"/api/runs/{segment(run_id)}/steps/{segment(step_id)}/{action}"

    def start_step_run(
        self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any
    ) -> StepRunRecord:
        """Record that a step started (or started another attempt); returns its record."""
        body = {"require_running": require_running, "values": dump_values(values)}
        record = load(StepRunRecord, self._post(self._step_path(run_id, step_id, "start"), body))
        if not self._holds_run_token():  # a step process's store completes one step and is gone
            with self._lock:
                _remember(self._started, record.id, (record.run_id, record.step_id))
        return record

    def record_step_run(self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any) -> str:
        """Insert a finished step run in one go (a cached or skipped step); returns its id."""
        inputs = values.pop("inputs", None) or {}
        outputs = values.pop("outputs", None) or {}
        body = {
            "require_running": require_running,
            "inputs": dict(inputs),
            "outputs": dict(outputs),
            "values": dump_values(values),
        }
        return str(self._post(self._step_path(run_id, step_id, "record"), body)["id"])

    def finish_step_run(
        self,
        step_run_id: str,
        status: str,
        *,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        **values: Any,
    ) -> None:
        """Set a step run's final status and link its input and output artifacts."""
        body = {
            "status": status,
            "inputs": dict(inputs or {}),
            "outputs": dict(outputs or {}),
            "values": dump_values(values),
        }
        self._post(f"/api/step-runs/{segment(step_run_id)}/finish", body)

    def complete_step_run(
        self,
        step_run_id: str,
        *,
        inputs: Mapping[str, str],
        new_artifacts: Mapping[str, dict[str, Any]],
        require_running: bool = False,
        **values: Any,
    ) -> dict[str, str]:
        """Register a step's new artifacts and mark it completed, in one transaction."""
        with self._lock:
            step = self._started.pop(step_run_id, None)
        body = {
            "inputs": dict(inputs),
            "new_artifacts": {k: dump_values(v) for k, v in new_artifacts.items()},
            "require_running": require_running,
            "values": dump_values(values),
        }
        if step is not None:
            body["answer_artifacts"] = True
        answer = self._post(f"/api/step-runs/{segment(step_run_id)}/complete", body)
        if step is not None and answer.get("artifacts") is not None:
            outputs = {k: load(ArtifactRecord, v) for k, v in answer["artifacts"].items()}
            with self._lock:
                _remember(self._completed, step, outputs)
        return dict(answer["outputs"])

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        """A step run by id."""
        _findable("step_run", step_run_id)
        return load(StepRunRecord, self._get(f"/api/step-runs/{segment(step_run_id)}"))

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """The step runs of a run, in the order they started."""
        return [load(StepRunRecord, r) for r in self._get(f"/api/runs/{segment(run_id)}/steps")]

    def step_run_artifacts(self, step_run_id: str, *, inputs: bool) -> dict[str, ArtifactRecord]:
        """``{name: artifact}`` of a step run's inputs or outputs."""
        found = self._get(f"/api/step-runs/{segment(step_run_id)}/artifacts", inputs=inputs)
        return {k: load(ArtifactRecord, v) for k, v in found.items()}

    def outputs_of_step(self, run_id: str, step_id: str) -> dict[str, ArtifactRecord]:
        """Outputs of step ``step_id`` in a run, for resolving downstream inputs."""
        with self._lock:
            known = self._completed.pop((run_id, step_id), None)
        if known is not None:
            return known  # completed through this store: what the server answered then
        found = self._get(self._step_path(run_id, step_id, "outputs"))
        return {k: load(ArtifactRecord, v) for k, v in found.items()}

    def find_cached(self, cache_key: str, limit: int = 5) -> list[tuple[StepRunRecord, dict[str, ArtifactRecord]]]:
        """Completed step runs with this cache key, newest first, with their outputs."""
        found = self._get(f"/api/cache/{segment(cache_key)}", limit=limit)
        return [
            (load(StepRunRecord, hit["step_run"]), {k: load(ArtifactRecord, v) for k, v in hit["outputs"].items()})
            for hit in found
        ]

    # -- hook invocations ----------------------------------------------------------------
    def claim_hook_invocation(
        self, pipeline_name: str, run_id: str | None, step_id: str | None, event: str, position: int, hook: str
    ) -> str | None:
        """Record that a hook is about to run; returns the invocation's id, or None when it was claimed already."""
        body = {
            "pipeline_name": pipeline_name,
            "run_id": run_id,
            "step_id": step_id,
            "event": event,
            "position": position,
            "hook": hook,
        }
        claim = self._post("/api/hook-invocations", body)["id"]
        return None if claim is None else str(claim)

    def finish_hook_invocation(self, invocation_id: str, status: str, error: str | None = None) -> None:
        """Record how a claimed hook ended: ``completed``, or ``failed`` with its error line."""
        self._post(f"/api/hook-invocations/{segment(invocation_id)}/finish", {"status": status, "error": error})

    def list_hook_invocations(
        self, run_id: str | None, *, pipeline_name: str | None = None
    ) -> list[HookInvocationRecord]:
        """The hook invocations of a run (or of a pipeline's runs that were never created), in the order they started."""
        found = self._get("/api/hook-invocations", run_id=run_id, pipeline_name=pipeline_name)
        return [load(HookInvocationRecord, r) for r in found]

    # -- artifacts -----------------------------------------------------------------------
    def create_artifact_version(self, **values: Any) -> ArtifactRecord:
        """Register an artifact whose bytes are complete, numbering its version."""
        return load(ArtifactRecord, self._post("/api/artifacts", {"values": dump_values(values)}))

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """An artifact version by id."""
        _findable("artifact", artifact_id)
        return load(ArtifactRecord, self._get(f"/api/artifacts/{segment(artifact_id)}"))

    def list_artifacts(
        self,
        name: str | None = None,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        limit: int | None = None,
        removed: bool = False,
    ) -> list[ArtifactRecord]:
        """Artifact versions, newest first."""
        if any("\x00" in v for v in (name, pipeline, step) if isinstance(v, str)):
            return []  # no name holds a NUL (and no URL can carry one): what a SQL store finds
        found = self._get("/api/artifacts", name=name, pipeline=pipeline, step=step, limit=limit, removed=removed)
        return [load(ArtifactRecord, a) for a in found]

    def runs_using_artifact(self, artifact_id: str) -> list[RunRecord]:
        """Runs that made, read or reused (from the cache) this artifact, newest first."""
        return [load(RunRecord, r) for r in self._get(f"/api/artifacts/{segment(artifact_id)}/runs")]

    def unreferenced_artifacts(self) -> list[ArtifactRecord]:
        """Artifacts no run uses any more, files not yet removed."""
        return [load(ArtifactRecord, a) for a in self._get("/api/artifacts/unreferenced")]

    def mark_artifact_removed(self, artifact_id: str) -> None:
        """Record that an artifact's files were removed."""
        self._post(f"/api/artifacts/{segment(artifact_id)}/removed")

    def resolve_id(self, kind: str, ref: str) -> str:
        """The full id of the record of ``kind`` whose id is ``ref`` or starts with it."""
        _findable(kind, ref)
        return str(self._get(f"/api/ids/{segment(kind)}/{segment(ref)}")["id"])

    def artifact_consumers(self, artifact_id: str) -> list[StepRunRecord]:
        """Step runs that took this artifact as an input."""
        return [load(StepRunRecord, r) for r in self._get(f"/api/artifacts/{segment(artifact_id)}/consumers")]

    # -- models --------------------------------------------------------------------------
    def get_or_create_model_version(
        self,
        model: str,
        *,
        version: str | None = None,
        key: str | None = None,
        run_id: str | None = None,
        model_fields: Mapping[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """The model version a run works in, created (with the model) when it does not exist."""
        body = {
            "model": model,
            "version": version,
            "key": key,
            "run_id": run_id,
            "fields": dict(model_fields) if model_fields is not None else None,
        }
        return load(ModelVersionRecord, self._post("/api/models/versions", body))

    def get_model(self, name_or_id: str) -> ModelRecord:
        """A model by name or id."""
        return load(ModelRecord, self._get("/api/model", name=name_or_id))

    def list_models(self) -> list[ModelRecord]:
        """Every model, by name."""
        return [load(ModelRecord, r) for r in self._get("/api/models")]

    def get_model_version(self, model: str, version: str) -> ModelVersionRecord:
        """A version of a model by number, ``latest``, alias, name or id."""
        return load(ModelVersionRecord, self._get("/api/model/version", model=model, version=str(version)))

    def list_model_versions(self, model: str) -> list[ModelVersionRecord]:
        """The versions of a model, by number."""
        return [load(ModelVersionRecord, r) for r in self._get("/api/model/versions", model=model)]

    def set_model_alias(
        self, model: str, alias: str, version_id: str | None, *, moved_by: str
    ) -> ModelAliasEventRecord | None:
        """Point an alias of a model at a version (None removes it); the server records who moved it."""
        # moved_by is the authenticated caller's name on a server, whatever this process says.
        answer = self.http.request(
            "PUT", "/api/model/alias", {"model": model, "alias": alias, "version_id": version_id}
        )
        return None if answer is None else load(ModelAliasEventRecord, answer)

    def list_model_alias_events(self, model: str, alias: str | None = None) -> list[ModelAliasEventRecord]:
        """The moves of a model's aliases (or of one alias), oldest first."""
        found = self._get("/api/model/alias-events", model=model, alias=alias)
        return [load(ModelAliasEventRecord, r) for r in found]

    def link_model_version(
        self,
        version_id: str,
        *,
        run_id: str,
        step_run_id: str,
        role: str,
        artifacts: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Link a step run, the artifacts it produced or loaded, and what it logged to a model version."""
        body = {
            "run_id": run_id,
            "step_run_id": step_run_id,
            "role": role,
            "artifacts": dict(artifacts or {}),
            "metadata": dump_values(dict(metadata or {})),
        }
        self._post(f"/api/model-versions/{segment(version_id)}/links", body)

    def list_model_version_links(
        self, *, version_id: str | None = None, run_id: str | None = None
    ) -> list[ModelVersionLinkRecord]:
        """Links of a model version, or of a run, oldest first."""
        found = self._get("/api/model-links", version_id=version_id, run_id=run_id)
        return [load(ModelVersionLinkRecord, r) for r in found]

    def model_version_artifacts(self, version_id: str) -> dict[str, ArtifactRecord]:
        """``{artifact name: artifact}`` the version's steps produced (the newest of each name)."""
        found = self._get(f"/api/model-versions/{segment(version_id)}/artifacts")
        return {k: load(ArtifactRecord, v) for k, v in found.items()}

    # -- stack components and stacks -----------------------------------------------------
    def create_component(
        self, type_: str, flavor: str, name: str, config: Mapping[str, Any], *, install: str | None = None
    ) -> ComponentRecord:
        """Register a stack component."""
        body = {"type": type_, "flavor": flavor, "name": name, "config": dict(config), "install": install}
        return load(ComponentRecord, self._post("/api/components", body))

    def get_component(self, type_: str, name: str) -> ComponentRecord:
        """A stack component by type and name."""
        return load(ComponentRecord, self._get(f"/api/components/{segment(type_)}/{segment(name)}"))

    def list_components(self, type_: str | None = None) -> list[ComponentRecord]:
        """Registered components, by type and name."""
        return [load(ComponentRecord, c) for c in self._get("/api/components", type=type_)]

    def update_component(self, type_: str, name: str, config: Mapping[str, Any]) -> ComponentRecord:
        """Replace a component's config."""
        answer = self.http.request("PUT", f"/api/components/{segment(type_)}/{segment(name)}", {"config": dict(config)})
        return load(ComponentRecord, answer)

    def delete_component(self, type_: str, name: str) -> None:
        """Delete a component that no stack uses."""
        self.http.request("DELETE", f"/api/components/{segment(type_)}/{segment(name)}")

    def save_stack(self, name: str, component_ids: Mapping[str, str], *, create: bool) -> StackRecord:
        """Create a stack, or replace the members of an existing one."""
        body = {"name": name, "component_ids": dict(component_ids), "create": create}
        return load(StackRecord, self._post("/api/stacks", body))

    def ensure_stack(self, name: str, components: Mapping[str, tuple[str, str, dict[str, Any]]]) -> None:
        """Create a stack and its missing components in one transaction, unless the stack exists."""
        spec = {t: {"name": n, "flavor": f, "config": c} for t, (n, f, c) in components.items()}
        self._post("/api/stacks/ensure", {"name": name, "components": spec})

    def get_stack(self, name: str) -> StackRecord:
        """A stack with its components."""
        return load(StackRecord, self._get(f"/api/stacks/{segment(name)}"))

    def list_stacks(self) -> list[StackRecord]:
        """Every stack with its components, by name."""
        return [load(StackRecord, s) for s in self._get("/api/stacks")]

    def delete_stack(self, name: str) -> None:
        """Delete a stack (its components stay)."""
        self.http.request("DELETE", f"/api/stacks/{segment(name)}")

    # -- secrets -------------------------------------------------------------------------
    def secret_store(self, *, folder: Path | None = None) -> RestSecretStore:
        """The server's secrets: values are encrypted and decrypted there, with a key that never leaves it."""
        from conveyor.stores.rest._secrets import RestSecretStore

        return RestSecretStore(self)


_REMEMBERED = 512  # entries of a store's step memory: enough for the steps a driver runs at once


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``key``, forgetting the oldest entries beyond :data:`_REMEMBERED`."""
    memory[key] = value
    while len(memory) > _REMEMBERED:
        del memory[next(iter(memory))]


def _findable(kind: str, ref: str) -> None:
    """A reference no URL can carry (a NUL) names no record: the SQL store's answer, without a request."""
    if isinstance(ref, str) and "\x00" in ref and kind in ID_KINDS:
        what, hint = ID_KINDS[kind]
        raise NotFoundError(f"no {what} {ref!r}", hint)
