"""The conveyor server: a FastAPI app over a SQL metadata store.

Every :class:`~conveyor.stores.MetadataStore` method is one endpoint; the
REST store calls them. The server is the only process that holds the
database URL and the secrets key, and it keeps nothing in memory that the
database does not have (deployments, which never change, excepted), so any
number of workers serve the same data.

Errors are 4xx with ``{"error": one line, "hint": ..., "type": ...}``; the
REST store raises the same :mod:`conveyor.exceptions` class again, so the
CLI prints the same line as on a SQL store.

A new ``MetadataStore`` method gets its endpoint in three places (a unit
test fails, naming the method, until :class:`~conveyor.stores.rest.RestStore`
has it):

1. here, a route under ``/api/`` beside its kin, whose handler first decides
   who may call it: ``reader(p, what)`` to read (refuses run tokens and
   runners), ``p.require("editor" | "admin", what)`` to change things
   (refuses run tokens), or, for what a step must do, ``run_only`` /
   ``step_run_scope`` so a run token reaches its own run only; then it calls
   ``st.<method>(...)`` and returns ``_json(dump(result))``;
2. in :mod:`conveyor.server._models`, a pydantic model for a request body
   (``extra="forbid"``, bounded strings) and the response model of records;
3. in :class:`~conveyor.stores.rest.RestStore`, the same method as one
   ``self._get``/``self._post``/``self.http.request`` call, turning the answer
   into records with ``load(RecordClass, data)``.

Records cross the wire as their dataclass fields (:mod:`conveyor.stores.rest._wire`):
a new record class of plain fields and timestamps needs nothing more; one
that nests other records needs a case in ``_wire.load`` (as ``StackRecord`` has).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor import __version__
from conveyor.exceptions import (
    AuthenticationError,
    ConfigError,
    ConveyorError,
    NotFoundError,
    PermissionDeniedError,
    RunSettledError,
    SchemaVersionError,
    SecretError,
    ServerVersionError,
    StoreError,
)
from conveyor.server import _models as m
from conveyor.server._auth import Authenticator, AuthSettings, Principal, TooManyAttempts
from conveyor.server._guard import RequestGuard
from conveyor.stores.rest._http import API_VERSION
from conveyor.stores.rest._wire import dump
from conveyor.stores.sql import SqlStore
from conveyor.stores.sql import _schema as t

log = logging.getLogger("conveyor.server")

SECRETS_OWNER = "server"
"""The owner of every secret on a server: the team's."""


@dataclass(frozen=True)
class ServerSettings:
    """What a server process needs: where its database and folder are, and how credentials live.

    Attributes:
        store_url: the SQL database (the only place it is known).
        data_dir: the server's folder (its secrets key file, the default SQLite file and artifact folder).
        auth: session lifetime, run token leeway, login limits.
        migrate: create or upgrade the schema on start (``conveyor server start`` does it once, before its workers).
    """

    store_url: str
    data_dir: Path
    auth: AuthSettings = field(default_factory=AuthSettings)
    migrate: bool = True

    def to_json(self) -> str:
        """The settings as JSON, for worker processes (the environment carries them)."""
        return json.dumps(
            {
                "store_url": self.store_url,
                "data_dir": str(self.data_dir),
                "auth": self.auth.__dict__,
                "migrate": self.migrate,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        """Settings written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            store_url=data["store_url"],
            data_dir=Path(data["data_dir"]),
            auth=AuthSettings(**data["auth"]),
            migrate=data["migrate"],
        )


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _problem(status: int, error: str, hint: str | None = None, kind: str | None = None, **headers: str) -> Response:
    line = " ".join(part.strip() for part in str(error).splitlines() if part.strip()) or "error"
    body = {"error": line, "hint": hint, "type": kind}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _status_of(exc: ConveyorError) -> int:
    if isinstance(exc, TooManyAttempts):
        return 429
    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, SecretError):
        return 404 if exc.message.startswith("no secret") else 400
    if isinstance(exc, (RunSettledError, SchemaVersionError)):
        return 409
    if isinstance(exc, ServerVersionError):
        return 400
    if isinstance(exc, StoreError):
        return 409
    return 400


# Scope checks that run on a step's every call: statements built once (building one costs more than running it).
_RUN_OF_STEP_RUN = sa.select(t.step_runs.c.run_id).where(t.step_runs.c.id == sa.bindparam("id"))
_RUN_OF_HOOK = sa.select(t.hook_invocations.c.run_id).where(t.hook_invocations.c.id == sa.bindparam("id"))


class Server:
    """The state one worker process holds: its store, its authenticator, and deployments read so far."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.store = SqlStore(settings.store_url, migrate=settings.migrate)
        self.auth = Authenticator(self.store, settings.auth)
        self._deployments: dict[str, Any] = {}
        self._lock = threading.Lock()

    def secrets(self) -> Any:
        """The server's secrets, under its own key (never sent anywhere)."""
        from conveyor.secrets import SecretStore

        return SecretStore(self.store, folder=self.settings.data_dir, owner=SECRETS_OWNER)

    # -- run scope -------------------------------------------------------------------
    def deployment(self, deployment_id: str) -> Any:
        """A stored deployment, parsed (kept: deployments are content-addressed and never change)."""
        with self._lock:
            found = self._deployments.get(deployment_id)
        if found is None:
            from conveyor.ir import load_deployment

            found = load_deployment(self.store.get_deployment_json(deployment_id))
            with self._lock:
                self._deployments[deployment_id] = found
        return found

    def run_secrets(self, run_id: str) -> set[str]:
        """Names of the secrets a run may resolve: its steps' declared secrets, and every
        ``{{name.key}}`` in its steps' settings and its stack's component configs."""
        from conveyor.secrets import find_references

        deployment = self.deployment(self.store.get_run(run_id).deployment_id)
        names = {name for name, _ in find_references(deployment.stack.model_dump(mode="json"))}
        for step in deployment.pipeline.steps:
            names.update(step.settings.secrets)
            names.update(name for name, _ in find_references(step.settings.model_dump(mode="json")))
        return names

    def component_secrets(self) -> set[str]:
        """Names of the secrets referenced by registered components (what using a stack from a laptop needs)."""
        from conveyor.secrets import find_references

        return {name for c in self.store.list_components() for name, _ in find_references(c.config)}

    def run_of_step_run(self, step_run_id: str) -> str | None:
        """The run a step run belongs to."""
        with self.store.read() as conn:
            return conn.execute(_RUN_OF_STEP_RUN, {"id": step_run_id}).scalar()

    def run_of_hook_invocation(self, invocation_id: str) -> str | None:
        """The run a hook invocation belongs to (None for one without a run, or an unknown id)."""
        with self.store.read() as conn:
            return conn.execute(_RUN_OF_HOOK, {"id": invocation_id}).scalar()

    def artifact_in_run(self, artifact_id: str, run_id: str) -> bool:
        """Whether a run made or read an artifact."""
        sr = t.step_runs
        with self.store.read() as conn:
            for link in (t.step_run_inputs, t.step_run_outputs):
                found = conn.execute(
                    sa.select(link.c.step_run_id)
                    .join(sr, sr.c.id == link.c.step_run_id)
                    .where(link.c.artifact_id == artifact_id, sr.c.run_id == run_id)
                    .limit(1)
                ).first()
                if found is not None:
                    return True
            made = conn.execute(
                sa.select(t.artifact_versions.c.id)
                .join(sr, sr.c.id == t.artifact_versions.c.producer_step_run_id)
                .where(t.artifact_versions.c.id == artifact_id, sr.c.run_id == run_id)
            ).first()
        return made is not None


def _denied(p: Principal, what: str) -> PermissionDeniedError:
    who = f"the step token of run {p.run_id}" if p.is_run else f"{p.name} ({p.role})"
    return PermissionDeniedError(f"{who} may not {what}")


def create_app(settings: ServerSettings) -> FastAPI:
    """The server's ASGI app over the database ``settings`` names.

    Raises:
        StoreError: the database cannot be reached or is not a conveyor database.
    """
    server = Server(settings)
    app = FastAPI(
        title="conveyor server",
        version=__version__,
        description="The team store of conveyor: pipelines, runs, artifacts, stacks and secrets.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    app.add_middleware(RequestGuard, api_version=API_VERSION, version=__version__)
    _errors(app)
    _document_credentials(app)

    # Called inside each endpoint rather than as a dependency: one trip to the thread pool per request.
    def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() != "bearer":
            raise AuthenticationError("the Authorization header must be 'Bearer TOKEN'")
        return server.auth.authenticate(token.strip() or None)

    st = server.store

    def reader(p: Principal, what: str) -> None:
        if p.is_run or p.role == "runner":
            raise _denied(p, what)

    def run_only(p: Principal, run_id: str, what: str) -> None:
        """A run token may touch only its own run (by id or name)."""
        if p.is_run and run_id != p.run_id and st.get_run(run_id).id != p.run_id:
            raise _denied(p, what)

    def step_run_scope(p: Principal, step_run_id: str, what: str) -> None:
        if p.is_run and server.run_of_step_run(step_run_id) != p.run_id:
            raise _denied(p, what)

    def writer(p: Principal, what: str) -> None:
        if not p.is_run:
            p.require("editor", what)

    # -- health ------------------------------------------------------------------------
    @app.get("/health", response_model=m.VersionOut, tags=["health"])
    def health() -> Response:
        """The process answers."""
        return _json({"version": __version__, "api_version": API_VERSION})

    @app.get("/ready", responses={200: {"model": m.VersionOut}, 503: {"model": m.Problem}}, tags=["health"])
    def ready() -> Response:
        """The database answers and has the schema this server needs."""
        try:
            with st.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (StoreError, sa.exc.SQLAlchemyError) as exc:
            return _problem(503, f"the database does not answer: {exc}")
        return _json({"version": __version__, "api_version": API_VERSION})

    @app.get("/api/version", response_model=m.VersionOut, tags=["health"])
    def version() -> Response:
        """The server's conveyor version and API version."""
        return _json({"version": __version__, "api_version": API_VERSION})

    # -- who -----------------------------------------------------------------------------
    @app.post("/api/login", response_model=m.TokenOut, responses={401: {"model": m.Problem}}, tags=["auth"])
    def login(request: Request, body: m.LoginIn) -> Response:
        """A session for a user's name and password (rate-limited: repeated failures get 429)."""
        address = request.client.host if request.client else "unknown"
        token, expires, _ = server.auth.login(body.username, body.password, address[:64])
        return _json({"token": token, "expires": dump(expires)})

    @app.post("/api/logout", status_code=204, tags=["auth"])
    def logout(request: Request) -> Response:
        """End the caller's session."""
        p = principal(request)
        server.auth.logout(p)
        return Response(status_code=204)

    @app.get("/api/me", response_model=m.Me, tags=["auth"])
    def me(request: Request) -> Response:
        """Who the credential belongs to."""
        p = principal(request)
        return _json({"name": p.name, "kind": p.kind, "role": p.role, "credential": p.credential, "run_id": p.run_id})

    @app.get("/api/users", response_model=list[m.UserOut], tags=["auth"])
    def list_users(request: Request) -> Response:
        """Users (admins only)."""
        p = principal(request)
        p.require("admin", "list users")
        return _json(server.auth.list_users("user"))

    @app.post("/api/users", response_model=m.UserOut, status_code=201, tags=["auth"])
    def create_user(request: Request, body: m.UserIn) -> Response:
        """Add a user (admins only)."""
        p = principal(request)
        p.require("admin", "manage users")
        return _json(server.auth.create_user(body.name, body.role, body.password), 201)

    @app.delete("/api/users/{name}", status_code=204, tags=["auth"])
    def delete_user(request: Request, name: str) -> Response:
        """Delete a user and end their sessions (admins only)."""
        p = principal(request)
        p.require("admin", "manage users")
        server.auth.delete_user(name, kind="user", by=p)
        return Response(status_code=204)

    @app.get("/api/service-accounts", response_model=list[m.UserOut], tags=["auth"])
    def list_service_accounts(request: Request) -> Response:
        """Service accounts (admins only)."""
        p = principal(request)
        p.require("admin", "list service accounts")
        return _json(server.auth.list_users("service"))

    @app.post("/api/service-accounts", response_model=m.ApiKeyOut, status_code=201, tags=["auth"])
    def create_service_account(request: Request, body: m.ServiceAccountIn) -> Response:
        """Add a service account and its first API key, shown only in this answer (admins only)."""
        p = principal(request)
        p.require("admin", "manage service accounts")
        account = server.auth.create_user(body.name, body.role, None, kind="service")
        return _json({"account": account, "api_key": server.auth.create_api_key(body.name)}, 201)

    @app.post("/api/service-accounts/{name}/keys", response_model=m.TokenOut, status_code=201, tags=["auth"])
    def create_api_key(request: Request, name: str) -> Response:
        """Another API key for a service account (admins only)."""
        p = principal(request)
        p.require("admin", "manage service accounts")
        return _json({"token": server.auth.create_api_key(name), "expires": None}, 201)

    @app.delete("/api/service-accounts/{name}", status_code=204, tags=["auth"])
    def delete_service_account(request: Request, name: str) -> Response:
        """Delete a service account and revoke its keys (admins only)."""
        p = principal(request)
        p.require("admin", "manage service accounts")
        server.auth.delete_user(name, kind="service", by=p)
        return Response(status_code=204)

    # -- pipelines and deployments -------------------------------------------------------
    @app.post("/api/pipelines", response_model=m.PipelineOut, tags=["pipelines"])
    def get_or_create_pipeline(request: Request, body: m.PipelineIn) -> Response:
        """The pipeline of this name, created on first use."""
        p = principal(request)
        if p.is_run:
            pipeline = st.get_pipeline(st.get_run(p.run_id or "").pipeline_id)
            if pipeline.name != body.name:
                raise _denied(p, f"touch pipeline {body.name!r}")
            return _json(dump(pipeline))
        if p.role != "runner":
            p.require("editor", "create pipelines")
        return _json(dump(st.get_or_create_pipeline(body.name)))

    @app.get("/api/pipelines", response_model=list[m.PipelineOut], tags=["pipelines"])
    def list_pipelines(request: Request) -> Response:
        """Every pipeline, by name."""
        p = principal(request)
        reader(p, "list pipelines")
        return _json(dump(st.list_pipelines()))

    @app.get("/api/pipelines/{name_or_id}", response_model=m.PipelineOut, tags=["pipelines"])
    def get_pipeline(request: Request, name_or_id: str) -> Response:
        """A pipeline by name or id."""
        p = principal(request)
        record = st.get_pipeline(name_or_id)
        if p.is_run and st.get_run(p.run_id or "").pipeline_id != record.id:
            raise _denied(p, "read other pipelines")
        if not p.is_run:
            reader(p, "read pipelines")
        return _json(dump(record))

    @app.get("/api/pipelines/{pipeline_id}/latest-deployment", response_model=m.IdOut, tags=["pipelines"])
    def latest_deployment(request: Request, pipeline_id: str) -> Response:
        """The id of the newest deployment of a pipeline."""
        p = principal(request)
        reader(p, "list deployments")
        return _json({"id": st.latest_deployment_id(pipeline_id)})

    @app.put("/api/deployments/{deployment_id}", status_code=204, tags=["pipelines"])
    def save_deployment(request: Request, deployment_id: str, body: m.DeploymentIn) -> Response:
        """Store a deployment's canonical JSON under its content id (idempotent)."""
        p = principal(request)
        p.require("editor", "store deployments")
        if not 1 <= len(deployment_id) <= 32:
            raise StoreError(f"deployment id {deployment_id[:40]!r} is not an id of 1 to 32 characters")
        st.save_deployment(deployment_id, body.pipeline_id, body.ir_json)
        return Response(status_code=204)

    @app.get(
        "/api/deployments/{deployment_id}",
        tags=["pipelines"],
        responses={200: {"description": "the deployment's canonical JSON", "content": {"application/json": {}}}},
    )
    def get_deployment(request: Request, deployment_id: str) -> Response:
        """A stored deployment's JSON."""
        p = principal(request)
        if p.is_run and st.get_run(p.run_id or "").deployment_id != deployment_id:
            raise _denied(p, "read other deployments")
        if not p.is_run and p.role != "runner":
            reader(p, "read deployments")
        return Response(st.get_deployment_json(deployment_id), media_type="application/json")

    # -- runs --------------------------------------------------------------------------------
    @app.post("/api/runs", response_model=m.RunOut, tags=["runs"])
    def create_run(request: Request, body: m.RunIn) -> Response:
        """A new run."""
        p = principal(request)
        p.require("editor", "start runs")
        return _json(dump(st.create_run(**body.values.model_dump(exclude_unset=True))))

    @app.post("/api/runs/join", response_model=m.RunOut, tags=["runs"])
    def join_run(request: Request, body: m.JoinIn) -> Response:
        """The run of an engine's run key, created by whichever caller asks first."""
        p = principal(request)
        values = body.values.model_dump(exclude_unset=True)
        values.pop("run_key", None)  # the key is the one joined
        if p.is_run:
            own = st.get_run(p.run_id or "")
            if own.run_key != body.run_key:
                raise _denied(p, "join other runs")
            return _json(dump(own))
        if p.role != "runner":
            p.require("editor", "start runs")
        else:
            st.get_deployment_json(values["deployment_id"])  # runners start stored deployments only
        return _json(dump(st.join_run(body.run_key, **values)))

    @app.patch("/api/runs/{run_id}", response_model=m.Changed, tags=["runs"])
    def update_run(request: Request, run_id: str, body: m.RunUpdateIn) -> Response:
        """Change fields of a run (``only_if_status``: only while it has that status)."""
        p = principal(request)
        writer(p, "change runs")
        run_only(p, run_id, "change other runs")
        values = body.values.model_dump(exclude_unset=True)
        if "id" in values:
            raise ConfigError("values.id: a run's id cannot change")
        changed = st.update_run(run_id, only_if_status=body.only_if_status, **values) if values else False
        return _json({"changed": changed})

    @app.post("/api/runs/{run_id}/settle", response_model=m.Settled, tags=["runs"])
    def settle_run(request: Request, run_id: str, body: m.SettleIn) -> Response:
        """Give a running run its final status."""
        p = principal(request)
        writer(p, "settle runs")
        run_only(p, run_id, "settle other runs")
        settled = st.settle_run(run_id, body.status, error=body.error, running_steps=body.running_steps)
        return _json({"settled": settled})

    @app.post("/api/runs/{run_id}/token", response_model=m.TokenOut, tags=["runs"])
    def mint_token(request: Request, run_id: str) -> Response:
        """A token scoped to one run, for its step processes."""
        p = principal(request)
        return _json({"token": server.auth.mint_run_token(p, run_id), "expires": None})

    @app.get("/api/runs", response_model=list[m.RunOut], tags=["runs"])
    def list_runs(
        request: Request,
        pipeline_id: str | None = None,
        limit: int | None = Query(default=None, ge=0, le=1_000_000),
        status: str | None = None,
        tag: list[str] = Query(default=[], max_length=100),
    ) -> Response:
        """Runs, newest first (``tag``, repeated: only runs with every one of them)."""
        p = principal(request)
        reader(p, "list runs")
        return _json(dump(st.list_runs(pipeline_id, limit, status=status, tags=tag)))

    @app.get("/api/runs/{run_id}", response_model=m.RunOut, tags=["runs"])
    def get_run(request: Request, run_id: str) -> Response:
        """A run by id or name."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read runs")
        record = st.get_run(run_id)
        if p.is_run and record.id != p.run_id:
            raise _denied(p, "read other runs")
        return _json(dump(record))

    @app.post("/api/runs/{run_id}/tags", response_model=m.TagsOut, tags=["runs"])
    def tag_run(request: Request, run_id: str, body: m.TagsIn) -> Response:
        """Add and remove tags of a run; answers its tags."""
        p = principal(request)
        writer(p, "tag runs")
        run_only(p, run_id, "tag other runs")
        return _json({"tags": list(st.tag_run(run_id, add=body.add, remove=body.remove))})

    @app.delete("/api/runs/{run_id}", response_model=m.DeletedRunOut, tags=["runs"])
    def delete_run(request: Request, run_id: str, force: bool = False) -> Response:
        """Delete a run with its step runs; answers the log files nothing else refers to."""
        p = principal(request)
        p.require("editor", "delete runs")
        return _json({"logs": st.delete_run(run_id, force=force)})

    # -- step runs -------------------------------------------------------------------------
    @app.post("/api/runs/{run_id}/steps/{step_id}/start", response_model=m.StepRunOut, tags=["steps"])
    def start_step_run(request: Request, run_id: str, step_id: str, body: m.StepStartIn) -> Response:
        """A step (or another attempt) starts."""
        p = principal(request)
        writer(p, "record steps")
        run_only(p, run_id, "record steps of other runs")
        values = body.values.model_dump(exclude_unset=True)
        _check_step_id(step_id)
        return _json(dump(st.start_step_run(run_id, step_id, require_running=body.require_running, **values)))

    @app.post("/api/runs/{run_id}/steps/{step_id}/record", response_model=m.IdOut, tags=["steps"])
    def record_step_run(request: Request, run_id: str, step_id: str, body: m.StepRecordIn) -> Response:
        """A finished step run in one go (cached or skipped)."""
        p = principal(request)
        writer(p, "record steps")
        run_only(p, run_id, "record steps of other runs")
        _check_step_id(step_id)
        values = body.values.model_dump(exclude_unset=True)
        sid = st.record_step_run(
            run_id,
            step_id,
            require_running=body.require_running,
            inputs=body.inputs,
            outputs=body.outputs,
            **values,
        )
        return _json({"id": sid})

    @app.get("/api/runs/{run_id}/steps", response_model=list[m.StepRunOut], tags=["steps"])
    def list_step_runs(request: Request, run_id: str) -> Response:
        """The step runs of a run."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read step runs")
        run_only(p, run_id, "read other runs")
        return _json(dump(st.list_step_runs(run_id)))

    @app.get("/api/runs/{run_id}/steps/{step_id}/outputs", response_model=dict[str, m.ArtifactOut], tags=["steps"])
    def outputs_of_step(request: Request, run_id: str, step_id: str) -> Response:
        """Outputs of a step that succeeded in a run."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read step outputs")
        run_only(p, run_id, "read other runs")
        return _json(dump(st.outputs_of_step(run_id, step_id)))

    @app.post("/api/step-runs/{step_run_id}/finish", status_code=204, tags=["steps"])
    def finish_step_run(request: Request, step_run_id: str, body: m.StepFinishIn) -> Response:
        """A step run's final status and links."""
        p = principal(request)
        writer(p, "record steps")
        step_run_scope(p, step_run_id, "record steps of other runs")
        st.get_step_run(step_run_id)
        values = body.values.model_dump(exclude_unset=True)
        values.pop("status", None)
        values.pop("ended", None)  # the server stamps the end
        st.finish_step_run(step_run_id, body.status, inputs=body.inputs, outputs=body.outputs, **values)
        return Response(status_code=204)

    @app.post("/api/step-runs/{step_run_id}/complete", response_model=m.OutputsOut, tags=["steps"])
    def complete_step_run(request: Request, step_run_id: str, body: m.StepCompleteIn) -> Response:
        """Register a step's new artifacts and mark it completed, in one transaction."""
        p = principal(request)
        writer(p, "record steps")
        step_run_scope(p, step_run_id, "record steps of other runs")
        values = body.values.model_dump(exclude_unset=True)
        values.pop("status", None)
        values.pop("ended", None)  # the server stamps the end
        new = {k: v.model_dump(exclude_unset=True) for k, v in body.new_artifacts.items()}
        for art in new.values():
            art.pop("producer_step_run_id", None)
            art.pop("created", None)
        outputs = st.complete_step_run(
            step_run_id, inputs=body.inputs, new_artifacts=new, require_running=body.require_running, **values
        )
        if body.answer_artifacts:
            return _json({"outputs": outputs, "artifacts": dump(st.step_run_artifacts(step_run_id, inputs=False))})
        return _json({"outputs": outputs})

    @app.get("/api/step-runs/{step_run_id}", response_model=m.StepRunOut, tags=["steps"])
    def get_step_run(request: Request, step_run_id: str) -> Response:
        """A step run by id."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read step runs")
        record = st.get_step_run(step_run_id)
        if p.is_run and record.run_id != p.run_id:
            raise _denied(p, "read other runs")
        return _json(dump(record))

    @app.get("/api/step-runs/{step_run_id}/artifacts", response_model=dict[str, m.ArtifactOut], tags=["steps"])
    def step_run_artifacts(request: Request, step_run_id: str, inputs: bool = False) -> Response:
        """A step run's input or output artifacts."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read step runs")
        step_run_scope(p, step_run_id, "read other runs")
        return _json(dump(st.step_run_artifacts(step_run_id, inputs=inputs)))

    @app.get("/api/cache/{cache_key}", response_model=list[m.CacheHit], tags=["steps"])
    def find_cached(request: Request, cache_key: str, limit: int = Query(default=5, ge=1, le=100)) -> Response:
        """Completed step runs with this cache key, with their outputs (what a step reuses)."""
        p = principal(request)
        if not p.is_run:
            reader(p, "look up the cache")
        hits = st.find_cached(cache_key, limit)
        return _json([{"step_run": dump(r), "outputs": dump(o)} for r, o in hits])

    # -- hook invocations --------------------------------------------------------------------
    @app.post("/api/hook-invocations", response_model=m.HookClaimOut, tags=["hooks"])
    def claim_hook_invocation(request: Request, body: m.HookClaimIn) -> Response:
        """Claim a hook before it runs (``id`` null: another process claimed it first)."""
        p = principal(request)
        writer(p, "record hooks")
        # A step token records only its own run's hooks; hooks of a run that was never created are the launcher's.
        if p.is_run and body.run_id != p.run_id:
            raise _denied(p, "record hooks of other runs")
        claim = st.claim_hook_invocation(
            body.pipeline_name, body.run_id, body.step_id, body.event, body.position, body.hook
        )
        return _json({"id": claim})

    @app.post("/api/hook-invocations/{invocation_id}/finish", status_code=204, tags=["hooks"])
    def finish_hook_invocation(request: Request, invocation_id: str, body: m.HookFinishIn) -> Response:
        """Record how a claimed hook ended."""
        p = principal(request)
        writer(p, "record hooks")
        if p.is_run and server.run_of_hook_invocation(invocation_id) != p.run_id:
            raise _denied(p, "record hooks of other runs")
        st.finish_hook_invocation(invocation_id, body.status, error=body.error)
        return Response(status_code=204)

    @app.get("/api/hook-invocations", response_model=list[m.HookInvocationOut], tags=["hooks"])
    def list_hook_invocations(
        request: Request,
        run_id: str | None = None,
        pipeline_name: str | None = Query(default=None, max_length=255),
    ) -> Response:
        """A run's hook invocations, or (without ``run_id``) a pipeline's that had no run, in the order they started."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read hook invocations")
        elif run_id != p.run_id:
            raise _denied(p, "read hooks of other runs")
        return _json(dump(st.list_hook_invocations(run_id, pipeline_name=pipeline_name)))

    # -- artifacts ---------------------------------------------------------------------------
    @app.post("/api/artifacts", response_model=m.ArtifactOut, tags=["artifacts"])
    def create_artifact(request: Request, body: m.ArtifactIn) -> Response:
        """Register an artifact whose bytes are complete."""
        p = principal(request)
        p.require("editor", "register artifacts")
        return _json(dump(st.create_artifact_version(**body.values.model_dump(exclude_unset=True))))

    @app.get("/api/artifacts", response_model=list[m.ArtifactOut], tags=["artifacts"])
    def list_artifacts(
        request: Request,
        name: str | None = None,
        pipeline: str | None = None,
        step: str | None = None,
        limit: int | None = Query(default=None, ge=0, le=1_000_000),
        removed: bool = False,
    ) -> Response:
        """Artifact versions, newest first (``removed``: with those whose files were removed)."""
        p = principal(request)
        reader(p, "list artifacts")
        return _json(dump(st.list_artifacts(name, pipeline=pipeline, step=step, limit=limit, removed=removed)))

    @app.get("/api/artifacts/unreferenced", response_model=list[m.ArtifactOut], tags=["artifacts"])
    def unreferenced_artifacts(request: Request) -> Response:
        """Artifacts no run uses any more whose files are still there (what ``conveyor gc`` removes)."""
        p = principal(request)
        reader(p, "list artifacts")
        return _json(dump(st.unreferenced_artifacts()))

    @app.get("/api/artifacts/{artifact_id}", response_model=m.ArtifactOut, tags=["artifacts"])
    def get_artifact(request: Request, artifact_id: str) -> Response:
        """An artifact version."""
        p = principal(request)
        if not p.is_run:
            reader(p, "read artifacts")
        record = st.get_artifact(artifact_id)
        if p.is_run and not server.artifact_in_run(record.id, p.run_id or ""):
            raise _denied(p, "read artifacts of other runs")
        return _json(dump(record))

    @app.get("/api/artifacts/{artifact_id}/consumers", response_model=list[m.StepRunOut], tags=["artifacts"])
    def artifact_consumers(request: Request, artifact_id: str) -> Response:
        """Step runs that read an artifact."""
        p = principal(request)
        reader(p, "read artifacts")
        return _json(dump(st.artifact_consumers(artifact_id)))

    @app.get("/api/artifacts/{artifact_id}/runs", response_model=list[m.RunOut], tags=["artifacts"])
    def runs_using_artifact(request: Request, artifact_id: str) -> Response:
        """Runs that made, read or reused an artifact, newest first."""
        p = principal(request)
        reader(p, "read artifacts")
        return _json(dump(st.runs_using_artifact(artifact_id)))

    @app.post("/api/artifacts/{artifact_id}/removed", status_code=204, tags=["artifacts"])
    def mark_artifact_removed(request: Request, artifact_id: str) -> Response:
        """Record that an artifact's files were removed (its record stays)."""
        p = principal(request)
        p.require("editor", "remove artifacts")
        st.mark_artifact_removed(artifact_id)
        return Response(status_code=204)

    # -- ids ---------------------------------------------------------------------------------
    @app.get("/api/ids/{kind}/{ref}", response_model=m.IdOut, tags=["ids"])
    def resolve_id(request: Request, kind: str, ref: str) -> Response:
        """The full id of the record of ``kind`` (run, artifact, step_run) whose id starts with ``ref``."""
        p = principal(request)
        reader(p, "look up ids")
        return _json({"id": st.resolve_id(kind, ref)})

    # -- models ------------------------------------------------------------------------------
    # A step reads any model version by reference (it may load one another run produced) but lists
    # nothing; it creates and links versions only for its own run.
    def model_reader(p: Principal, what: str) -> None:
        if not p.is_run:
            reader(p, what)

    @app.post("/api/models/versions", response_model=m.ModelVersionOut, tags=["models"])
    def get_or_create_model_version(request: Request, body: m.ModelVersionIn) -> Response:
        """The model version a run works in, created (with the model) when it does not exist."""
        p = principal(request)
        writer(p, "create model versions")
        if p.is_run and body.run_id is None:
            raise _denied(p, "create model versions outside its run")
        if body.run_id is not None:
            run_only(p, body.run_id, "create model versions for other runs")
        fields = body.fields.model_dump(exclude_none=True) if body.fields else None
        record = st.get_or_create_model_version(
            body.model, version=body.version, key=body.key, run_id=body.run_id, model_fields=fields
        )
        return _json(dump(record))

    @app.get("/api/models", response_model=list[m.ModelOut], tags=["models"])
    def list_models(request: Request) -> Response:
        """Every model, by name."""
        p = principal(request)
        reader(p, "list models")
        return _json(dump(st.list_models()))

    # Model, version and alias names travel in the query or the body, never in the path: they may
    # hold any character (the store refuses or keeps them exactly, as on a SQL store).
    @app.get("/api/model", response_model=m.ModelOut, tags=["models"])
    def get_model(request: Request, name: str = Query(max_length=1024)) -> Response:
        """A model by name or id."""
        p = principal(request)
        model_reader(p, "read models")
        return _json(dump(st.get_model(name)))

    @app.get("/api/model/versions", response_model=list[m.ModelVersionOut], tags=["models"])
    def list_model_versions(request: Request, model: str = Query(max_length=1024)) -> Response:
        """The versions of a model, by number."""
        p = principal(request)
        reader(p, "list model versions")
        return _json(dump(st.list_model_versions(model)))

    @app.get("/api/model/version", response_model=m.ModelVersionOut, tags=["models"])
    def get_model_version(
        request: Request, model: str = Query(max_length=1024), version: str = Query(max_length=1024)
    ) -> Response:
        """A version of a model by number, ``latest``, alias, name or id."""
        p = principal(request)
        model_reader(p, "read models")
        return _json(dump(st.get_model_version(model, version)))

    @app.put("/api/model/alias", response_model=Optional[m.ModelAliasEventOut], tags=["models"])
    def set_model_alias(request: Request, body: m.ModelAliasIn) -> Response:
        """Point an alias at a version (null removes it); the move is recorded under the caller's name."""
        p = principal(request)
        if p.is_run:
            raise _denied(p, "move model aliases")
        p.require("editor", "move model aliases")
        event = st.set_model_alias(body.model, body.alias, body.version_id, moved_by=p.name)
        return _json(dump(event))

    @app.get("/api/model/alias-events", response_model=list[m.ModelAliasEventOut], tags=["models"])
    def list_model_alias_events(
        request: Request, model: str = Query(max_length=1024), alias: str | None = Query(default=None, max_length=1024)
    ) -> Response:
        """The moves of a model's aliases (or of one alias), oldest first."""
        p = principal(request)
        reader(p, "read alias history")
        return _json(dump(st.list_model_alias_events(model, alias)))

    @app.post("/api/model-versions/{version_id}/links", status_code=204, tags=["models"])
    def link_model_version(request: Request, version_id: str, body: m.ModelLinkIn) -> Response:
        """Link a step run, its artifacts and what it logged to a model version."""
        p = principal(request)
        writer(p, "link model versions")
        run_only(p, body.run_id, "link other runs")
        step_run_scope(p, body.step_run_id, "link other runs")
        st.link_model_version(
            version_id,
            run_id=body.run_id,
            step_run_id=body.step_run_id,
            role=body.role,
            artifacts=body.artifacts,
            metadata=body.metadata,
        )
        return Response(status_code=204)

    @app.get("/api/model-links", response_model=list[m.ModelVersionLinkOut], tags=["models"])
    def list_model_version_links(
        request: Request, version_id: str | None = None, run_id: str | None = None
    ) -> Response:
        """Links of a model version, or of a run, oldest first."""
        p = principal(request)
        reader(p, "list model links")
        return _json(dump(st.list_model_version_links(version_id=version_id, run_id=run_id)))

    @app.get("/api/model-versions/{version_id}/artifacts", response_model=dict[str, m.ArtifactOut], tags=["models"])
    def model_version_artifacts(request: Request, version_id: str) -> Response:
        """``{artifact name: artifact}`` the version's steps produced (the newest of each name)."""
        p = principal(request)
        model_reader(p, "read models")
        return _json(dump(st.model_version_artifacts(version_id)))

    # -- components and stacks ------------------------------------------------------------
    @app.post("/api/components", response_model=m.ComponentOut, tags=["stacks"])
    def create_component(request: Request, body: m.ComponentIn) -> Response:
        """Register a stack component."""
        p = principal(request)
        p.require("editor", "register components")
        return _json(dump(st.create_component(body.type, body.flavor, body.name, body.config, install=body.install)))

    @app.get("/api/components", response_model=list[m.ComponentOut], tags=["stacks"])
    def list_components(request: Request, type: str | None = None) -> Response:
        """Registered components."""
        p = principal(request)
        reader(p, "list components")
        return _json(dump(st.list_components(type)))

    @app.get("/api/components/{type_}/{name}", response_model=m.ComponentOut, tags=["stacks"])
    def get_component(request: Request, type_: str, name: str) -> Response:
        """A component by type and name."""
        p = principal(request)
        reader(p, "read components")
        return _json(dump(st.get_component(type_, name)))

    @app.put("/api/components/{type_}/{name}", response_model=m.ComponentOut, tags=["stacks"])
    def update_component(request: Request, type_: str, name: str, body: m.ComponentUpdateIn) -> Response:
        """Replace a component's config."""
        p = principal(request)
        p.require("editor", "change components")
        return _json(dump(st.update_component(type_, name, body.config)))

    @app.delete("/api/components/{type_}/{name}", status_code=204, tags=["stacks"])
    def delete_component(request: Request, type_: str, name: str) -> Response:
        """Delete a component no stack uses."""
        p = principal(request)
        p.require("editor", "delete components")
        st.delete_component(type_, name)
        return Response(status_code=204)

    @app.post("/api/stacks", response_model=m.StackOut, tags=["stacks"])
    def save_stack(request: Request, body: m.StackIn) -> Response:
        """Create a stack, or replace its members (admins only)."""
        p = principal(request)
        p.require("admin", "change stacks")
        return _json(dump(st.save_stack(body.name, body.component_ids, create=body.create)))

    @app.post("/api/stacks/ensure", status_code=204, tags=["stacks"])
    def ensure_stack(request: Request, body: m.EnsureStackIn) -> Response:
        """Create a stack with its missing components unless it exists (creating one: admins only)."""
        p = principal(request)
        reader(p, "touch stacks")
        try:
            st.get_stack(body.name)
            return Response(status_code=204)
        except NotFoundError:
            pass
        p.require("admin", "create stacks")
        spec = {k: (c.name, c.flavor, c.config) for k, c in body.components.items()}
        st.ensure_stack(body.name, spec)
        return Response(status_code=204)

    @app.get("/api/stacks", response_model=list[m.StackOut], tags=["stacks"])
    def list_stacks(request: Request) -> Response:
        """Every stack."""
        p = principal(request)
        reader(p, "list stacks")
        return _json(dump(st.list_stacks()))

    @app.get("/api/stacks/{name}", response_model=m.StackOut, tags=["stacks"])
    def get_stack(request: Request, name: str) -> Response:
        """A stack with its components."""
        p = principal(request)
        reader(p, "read stacks")
        return _json(dump(st.get_stack(name)))

    @app.delete("/api/stacks/{name}", status_code=204, tags=["stacks"])
    def delete_stack(request: Request, name: str) -> Response:
        """Delete a stack (admins only)."""
        p = principal(request)
        p.require("admin", "delete stacks")
        st.delete_stack(name)
        return Response(status_code=204)

    # -- secrets -------------------------------------------------------------------------------
    def info(secret: Any) -> dict[str, Any]:
        return {**secret.to_dict(), "mine": True}

    @app.get("/api/secrets", response_model=list[m.SecretInfoOut], tags=["secrets"])
    def list_secrets(request: Request) -> Response:
        """Secrets' names, schemas and keys (never values)."""
        p = principal(request)
        reader(p, "list secrets")
        return _json([info(s) for s in server.secrets().list()])

    @app.get("/api/secrets/{name}", response_model=m.SecretInfoOut, tags=["secrets"])
    def get_secret_info(request: Request, name: str) -> Response:
        """A secret's name, schema and keys (never values)."""
        p = principal(request)
        reader(p, "read secrets")
        return _json(info(server.secrets().info(name)))

    @app.post("/api/secrets/resolve", response_model=m.ResolvedSecrets, tags=["secrets"])
    def resolve_secrets(request: Request, body: m.ResolveIn) -> Response:
        """Values of secrets, for a caller that may use them.

        Admins: any. A run's token: the secrets its deployment refers to (declared by
        its steps, in its steps' settings, in its stack's component configs). Anyone
        else who may read: the secrets registered components refer to (reaching the
        team's artifact store or registry from their machine needs them).
        """
        p = principal(request)
        if p.is_run:
            allowed = server.run_secrets(p.run_id or "")
        elif p.role == "admin":
            allowed = None
        else:
            reader(p, "read secret values")
            allowed = server.component_secrets()
        secrets = server.secrets()
        out = {}
        for name in body.names:
            if allowed is not None and name not in allowed:
                raise (
                    _denied(p, f"read secret {name!r}")
                    if p.is_run
                    else PermissionDeniedError(
                        f"{p.name} ({p.role}) may not read the values of secret {name!r}",
                        "only admins read secret values; a run's steps get the secrets they declare",
                    )
                )
            secret = secrets.get(name)
            out[name] = {"info": info(secret), "values": dict(secret.values)}
        return _json({"secrets": out})

    @app.post("/api/secrets", response_model=m.SecretInfoOut, status_code=201, tags=["secrets"])
    def create_secret(request: Request, body: m.SecretIn) -> Response:
        """Store a new secret, encrypted with the server's key (admins only)."""
        p = principal(request)
        p.require("admin", "create secrets")
        created = server.secrets().create(body.name, body.values, schema=body.schema_, shared=body.shared)
        return _json(info(created), 201)

    @app.patch("/api/secrets/{name}", response_model=m.SecretInfoOut, tags=["secrets"])
    def update_secret(request: Request, name: str, body: m.SecretUpdateIn) -> Response:
        """Change a secret (admins only)."""
        p = principal(request)
        p.require("admin", "change secrets")
        changed = server.secrets().update(
            name, body.values, remove_keys=body.remove_keys, replace=body.replace, shared=body.shared
        )
        return _json(info(changed))

    @app.delete("/api/secrets/{name}", status_code=204, tags=["secrets"])
    def delete_secret(request: Request, name: str) -> Response:
        """Delete a secret (admins only)."""
        p = principal(request)
        p.require("admin", "delete secrets")
        server.secrets().delete(name)
        return Response(status_code=204)

    @app.post("/api/secrets/rotate-key", response_model=m.RotationOut, tags=["secrets"])
    def rotate_key(request: Request) -> Response:
        """Re-encrypt every secret with a new key (admins only)."""
        p = principal(request)
        p.require("admin", "rotate the secrets key")
        result = server.secrets().rotate_key()
        return _json({**result.__dict__, "old_key_ids": list(result.old_key_ids)})

    # The dashboard's pages come last: its catch-all 404 page must not hide an API route.
    from conveyor.server.dashboard import DashboardSource, mount_dashboard

    mount_dashboard(app, DashboardSource(store=st, auth=server.auth, secrets=server.secrets, remote=True))
    return app


def _document_credentials(app: FastAPI) -> None:
    """Every endpoint but health, version and login takes ``Authorization: Bearer TOKEN``: say so in the OpenAPI document."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a session token (conveyor login), a service account's API key, or a run token",
                }
            }
            open_paths = ("/health", "/ready", "/api/version", "/api/login")
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    operation["security"] = [] if path in open_paths else [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI documents replacing it


def _check_step_id(step_id: str) -> None:
    if not 1 <= len(step_id) <= 255:
        raise StoreError(f"step id {step_id[:40]!r}... is not 1 to 255 characters")


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ConveyorError)
    async def conveyor_error(request: Request, exc: ConveyorError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else {}
        return _problem(_status_of(exc), exc.message, exc.hint, type(exc).__name__, **headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
        return _problem(422, f"{where}: {message}", None, "ConfigError")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        text = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            text = f"no such endpoint: {request.method} {request.url.path}"
        return _problem(exc.status_code, text, None, "NotFoundError" if exc.status_code == 404 else None)

    @app.exception_handler(sa.exc.IntegrityError)
    async def conflict(request: Request, exc: sa.exc.IntegrityError) -> Response:
        from conveyor.stores.sql._engine import short_error

        return _problem(409, f"the store refused it: {short_error(exc)}", "an id it names does not exist, or is taken")

    @app.exception_handler(sa.exc.DataError)
    async def bad_data(request: Request, exc: sa.exc.DataError) -> Response:
        from conveyor.stores.sql._engine import short_error

        return _problem(400, f"a value does not fit the store: {short_error(exc)}", None, "ConfigError")

    @app.exception_handler(sa.exc.OperationalError)
    async def database_down(request: Request, exc: sa.exc.OperationalError) -> Response:
        from conveyor.stores.sql._engine import short_error

        log.warning("database error: %s", short_error(exc))
        return _problem(503, "the server's database is unavailable", "try again shortly", "StoreError")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _problem(500, f"internal error: {type(exc).__name__}", "see the server's log", "StoreError")


def app_from_environment() -> FastAPI:
    """The app of a worker process: its settings come from ``CONVEYOR_SERVER_SETTINGS`` (``uvicorn --factory``)."""
    return create_app(ServerSettings.from_json(os.environ["CONVEYOR_SERVER_SETTINGS"]))
