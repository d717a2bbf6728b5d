"""The metadata store: pipelines, runs, step runs, artifacts and stacks (SQLAlchemy 2).

SQLite (the default, a file in ``.conveyor/``) runs in WAL mode with a busy
timeout, and every write transaction starts with ``BEGIN IMMEDIATE`` so that
concurrent processes queue instead of failing on lock upgrades. MariaDB/MySQL
and PostgreSQL work by URL. The schema is versioned with Alembic.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from conveyor._constants import ENV_STEP_ENTRYPOINT
from conveyor.exceptions import NotFoundError, SchemaVersionError, StoreError
from conveyor.stores import _schema as t
from conveyor.stores._records import (
    ArtifactRecord,
    ComponentRecord,
    PipelineRecord,
    RunRecord,
    RunStatus,
    StackRecord,
    StepRunRecord,
)

SCHEMA_REVISIONS = ("0001", "0002")
"""Every schema revision this conveyor knows, oldest first; the last is its head."""

R = TypeVar("R")


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A fresh random id."""
    return uuid.uuid4().hex


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _record(cls: type[R], row: Any) -> R:
    data = row._mapping
    return cls(**{f.name: _aware(data[f.name]) for f in fields(cls)})  # type: ignore[call-arg]


# Statements on the path every step takes, built once: building SQLAlchemy
# statement objects costs more than running them on SQLite.
_SR = t.step_runs
_AV = t.artifact_versions
_OUT = t.step_run_outputs
_Q_STEP_RUN = sa.select(_SR).where(_SR.c.run_id == sa.bindparam("run"), _SR.c.step_id == sa.bindparam("step"))
_Q_OUTPUTS = (
    sa.select(_OUT.c.name.label("link_name"), _AV)
    .join(_AV, _AV.c.id == _OUT.c.artifact_id)
    .where(_OUT.c.step_run_id == sa.bindparam("step_run"))
    .order_by(_OUT.c.name)
)
_Q_STEP_OUTPUTS = (
    sa.select(_SR.c.status.label("step_status"), _OUT.c.name.label("link_name"), _AV)
    .select_from(_SR.outerjoin(_OUT, _OUT.c.step_run_id == _SR.c.id).outerjoin(_AV, _AV.c.id == _OUT.c.artifact_id))
    .where(_SR.c.run_id == sa.bindparam("run"), _SR.c.step_id == sa.bindparam("step"))
)
_Q_CACHED = (
    sa.select(_SR)
    .where(_SR.c.cache_key == sa.bindparam("key"), _SR.c.status == RunStatus.COMPLETED)
    .order_by(_SR.c.ended.desc())
    .limit(sa.bindparam("limit"))
)
_Q_MAX_VERSION = sa.select(sa.func.max(_AV.c.version)).where(_AV.c.name == sa.bindparam("name"))
_I_STEP_RUN = _SR.insert()
_I_ARTIFACT = _AV.insert()
_I_INPUT = t.step_run_inputs.insert()
_I_OUTPUT = _OUT.insert()
_U_STEP_RUN = _SR.update().where(_SR.c.id == sa.bindparam("step_run_id"))
_STEP_RUN_FIELDS = tuple(f.name for f in fields(StepRunRecord))


def _process_start_time(pid: int) -> float | None:
    # Start time in clock ticks since boot: tells a live process from a new
    # one that reused the PID of a run that was killed.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return float(stat.rsplit(b")", 1)[1].split()[19])


def current_process_identity() -> tuple[str, int, float | None]:
    """``(host, pid, start time)`` of this process, recorded with local runs."""
    pid = os.getpid()
    return socket.gethostname(), pid, _process_start_time(pid)


def _sqlite_url_path(url: sa.URL) -> str | None:
    return url.database if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None


class MetadataStore:
    """Access to one metadata database.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``mysql+pymysql://...``,
            ``postgresql+psycopg://...``).
        migrate: create or upgrade the schema when it is missing or older.

    Raises:
        SchemaVersionError: the database was written by a newer conveyor.
        StoreError: the database cannot be reached.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        try:
            self.url = sa.make_url(url)
            self.is_sqlite = self.url.get_backend_name() == "sqlite"
            self.engine = self._create_engine()
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            shown = url.split("@")[-1] if "@" in url else url
            raise StoreError(
                f"cannot use the metadata store URL {shown!r}: {_short(exc)}",
                "give a SQLAlchemy URL such as sqlite:///path.db, mysql+pymysql://... or postgresql+psycopg://... "
                '(drivers: pip install "conveyor[mysql]" or "conveyor[postgres]")',
            ) from None
        try:
            self._check_schema(migrate)
            if not os.environ.get(ENV_STEP_ENTRYPOINT):
                self.fail_dead_runs()
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"MetadataStore({self.url.render_as_string(hide_password=True)!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password hidden."""
        return self.url.render_as_string(hide_password=True)

    # -- connection ------------------------------------------------------------------
    def _create_engine(self) -> sa.Engine:
        if not self.is_sqlite:
            return sa.create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=32)
        path = _sqlite_url_path(self.url)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when to BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            if path:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get("conveyor_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (serialized with other writers on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(conveyor_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreError(f"metadata store {self.display_url}: {_short(exc)}") from None

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise StoreError(f"metadata store {self.display_url}: {_short(exc)}") from None

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        """The schema revision of the database, or None when it is empty."""
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    # One cheap query instead of the inspector: this runs on every start.
                    found = conn.exec_driver_sql(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                    ).first()
                else:
                    found = sa.inspect(conn).has_table("alembic_version")
                if not found:
                    return None
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as exc:
            raise StoreError(f"cannot open the metadata store {self.display_url}: {_short(exc)}") from None

    def _check_schema(self, migrate: bool) -> None:
        revision = self.schema_revision()
        head = SCHEMA_REVISIONS[-1]
        if revision == head:
            return
        if revision is not None and revision not in SCHEMA_REVISIONS:
            raise SchemaVersionError(
                f"the metadata store {self.display_url} has schema {revision}, newer than this conveyor's {head}",
                "upgrade conveyor (pip install -U conveyor) to use it",
            )
        if not migrate:
            raise SchemaVersionError(f"the metadata store {self.display_url} needs migrating to {head}")
        self.migrate()

    def migrate(self) -> None:
        """Upgrade the database schema to this conveyor's head revision."""
        from conveyor.stores._migrate import upgrade

        upgrade(self.engine)

    # -- dead runs -------------------------------------------------------------------
    def fail_dead_runs(self) -> int:
        """Mark runs whose local owner process is gone (SIGKILL, power loss) as failed."""
        host = socket.gethostname()
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.pipeline_runs.c.id, t.pipeline_runs.c.pid, t.pipeline_runs.c.pid_started).where(
                    t.pipeline_runs.c.status == RunStatus.RUNNING,
                    t.pipeline_runs.c.host == host,
                    t.pipeline_runs.c.pid.is_not(None),
                )
            ).all()
        dead = [r.id for r in rows if _process_start_time(r.pid) != r.pid_started or r.pid_started is None]
        for run_id in dead:
            message = "the process running this pipeline ended without finishing it (killed?)"
            with self.write() as conn:
                conn.execute(
                    t.step_runs.update()
                    .where(t.step_runs.c.run_id == run_id, t.step_runs.c.status == RunStatus.RUNNING)
                    .values(status=RunStatus.FAILED, ended=now(), error=message)
                )
                conn.execute(
                    t.pipeline_runs.update()
                    .where(t.pipeline_runs.c.id == run_id, t.pipeline_runs.c.status == RunStatus.RUNNING)
                    .values(status=RunStatus.FAILED, ended=now(), error=message)
                )
        return len(dead)

    # -- pipelines and deployments ---------------------------------------------------
    def get_or_create_pipeline(self, name: str) -> PipelineRecord:
        """The pipeline of this name, created on first use."""
        for _ in range(3):
            with self.read() as conn:
                row = conn.execute(sa.select(t.pipelines).where(t.pipelines.c.name == name)).first()
            if row is not None:
                return _record(PipelineRecord, row)
            try:
                with self.write() as conn:
                    conn.execute(t.pipelines.insert().values(id=new_id(), name=name, created=now()))
            except IntegrityError:
                continue  # created by a concurrent process; read it back
        raise StoreError(f"cannot create pipeline {name!r}")

    def get_pipeline(self, name_or_id: str) -> PipelineRecord:
        """A pipeline by name or id."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(t.pipelines).where(sa.or_(t.pipelines.c.name == name_or_id, t.pipelines.c.id == name_or_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no pipeline {name_or_id!r}", "see `conveyor pipeline list`")
        return _record(PipelineRecord, row)

    def list_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline, by name."""
        with self.read() as conn:
            rows = conn.execute(sa.select(t.pipelines).order_by(t.pipelines.c.name)).all()
        return [_record(PipelineRecord, r) for r in rows]

    def save_deployment(self, deployment_id: str, pipeline_id: str, ir_json: str) -> None:
        """Store a deployment's JSON under its content id (idempotent)."""
        with self.read() as conn:
            found = conn.execute(sa.select(t.deployments.c.id).where(t.deployments.c.id == deployment_id)).first()
        if found is not None:
            return
        with contextlib.suppress(IntegrityError), self.write() as conn:
            conn.execute(
                t.deployments.insert().values(id=deployment_id, pipeline_id=pipeline_id, ir=ir_json, created=now())
            )

    def latest_deployment_id(self, pipeline_id: str) -> str | None:
        """The id of the newest deployment of a pipeline (run or only deployed), if any."""
        with self.read() as conn:
            return conn.execute(
                sa.select(t.deployments.c.id)
                .where(t.deployments.c.pipeline_id == pipeline_id)
                .order_by(t.deployments.c.created.desc())
                .limit(1)
            ).scalar()

    def get_deployment_json(self, deployment_id: str) -> str:
        """The JSON of a stored deployment."""
        with self.read() as conn:
            ir = conn.execute(sa.select(t.deployments.c.ir).where(t.deployments.c.id == deployment_id)).scalar()
        if ir is None:
            raise NotFoundError(
                f"no deployment {deployment_id!r} in {self.display_url}",
                "point CONVEYOR_STORE_URL at the store the pipeline was submitted to",
            )
        return ir

    # -- runs ------------------------------------------------------------------------
    def create_run(self, **values: Any) -> RunRecord:
        """Insert a pipeline run (``id``/``created``/``extra`` filled in when absent)."""
        values.setdefault("id", new_id())
        values.setdefault("created", now())
        values.setdefault("extra", {})
        values.setdefault("parameters", {})
        with self.write() as conn:
            conn.execute(t.pipeline_runs.insert().values(**values))
        return self.get_run(values["id"])

    def get_or_create_run(self, run_key: str, **values: Any) -> RunRecord:
        """The run with this engine run key, created by whichever step asks first."""
        for _ in range(5):
            with self.read() as conn:
                row = conn.execute(sa.select(t.pipeline_runs).where(t.pipeline_runs.c.run_key == run_key)).first()
            if row is not None:
                return _record(RunRecord, row)
            try:
                return self.create_run(run_key=run_key, **values)
            except (IntegrityError, StoreError):
                time.sleep(0.05)
        raise StoreError(f"cannot create the run for {run_key!r}")

    def update_run(self, run_id: str, *, only_if_status: str | None = None, **values: Any) -> bool:
        """Change fields of a run; with ``only_if_status`` only while it has that status."""
        stmt = t.pipeline_runs.update().where(t.pipeline_runs.c.id == run_id)
        if only_if_status is not None:
            stmt = stmt.where(t.pipeline_runs.c.status == only_if_status)
        with self.write() as conn:
            return conn.execute(stmt.values(**values)).rowcount > 0

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or name."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(t.pipeline_runs).where(
                    sa.or_(t.pipeline_runs.c.id == run_id, t.pipeline_runs.c.name == run_id)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no run {run_id!r}", "see `conveyor pipeline runs`")
        return _record(RunRecord, row)

    def list_runs(self, pipeline_id: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        stmt = sa.select(t.pipeline_runs).order_by(t.pipeline_runs.c.created.desc(), t.pipeline_runs.c.id)
        if pipeline_id is not None:
            stmt = stmt.where(t.pipeline_runs.c.pipeline_id == pipeline_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.read() as conn:
            return [_record(RunRecord, r) for r in conn.execute(stmt).all()]

    # -- step runs -------------------------------------------------------------------
    def start_step_run(self, run_id: str, step_id: str, **values: Any) -> StepRunRecord:
        """Record that a step started (or started another attempt); returns its record."""
        with self.write() as conn:
            row = conn.execute(_Q_STEP_RUN, {"run": run_id, "step": step_id}).first()
            if row is None:
                data = {
                    "id": new_id(),
                    "run_id": run_id,
                    "step_id": step_id,
                    "status": RunStatus.RUNNING,
                    "cached": False,
                    "started": now(),
                    "attempts": 1,
                    "parameters": {},
                    **values,
                }
                conn.execute(_I_STEP_RUN, data)
            else:
                data = {
                    **row._asdict(),
                    "status": RunStatus.RUNNING,
                    "attempts": row.attempts + 1,
                    "started": now(),
                    "ended": None,
                    "error": None,
                    **values,
                }
                changes = {k: data[k] for k in ("status", "attempts", "started", "ended", "error", *values)}
                conn.execute(_U_STEP_RUN.values(**changes), {"step_run_id": row.id})
                for link in (t.step_run_inputs, _OUT):  # links of the failed attempt
                    conn.execute(link.delete().where(link.c.step_run_id == row.id))
        return StepRunRecord(**{f: _aware(data.get(f)) for f in _STEP_RUN_FIELDS})

    def record_step_run(self, run_id: str, step_id: str, **values: Any) -> str:
        """Insert a finished step run in one go (cached or skipped steps)."""
        data = {
            "id": new_id(),
            "run_id": run_id,
            "step_id": step_id,
            "cached": False,
            "attempts": 0,
            "parameters": {},
            **values,
        }
        outputs: Mapping[str, str] = data.pop("outputs", {}) or {}
        inputs: Mapping[str, str] = data.pop("inputs", {}) or {}
        with self.write() as conn:
            conn.execute(_I_STEP_RUN, data)
            self._link(conn, data["id"], inputs, outputs)
        return data["id"]

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
        with self.write() as conn:
            conn.execute(
                t.step_runs.update().where(t.step_runs.c.id == step_run_id).values(status=status, ended=now(), **values)
            )
            self._link(conn, step_run_id, inputs or {}, outputs or {})

    @staticmethod
    def _link(conn: sa.Connection, step_run_id: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> None:
        if inputs:
            conn.execute(
                _I_INPUT, [{"step_run_id": step_run_id, "name": k, "artifact_id": v} for k, v in inputs.items()]
            )
        if outputs:
            conn.execute(
                _I_OUTPUT, [{"step_run_id": step_run_id, "name": k, "artifact_id": v} for k, v in outputs.items()]
            )

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        """A step run by id."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.step_runs).where(t.step_runs.c.id == step_run_id)).first()
        if row is None:
            raise NotFoundError(f"no step run {step_run_id!r}")
        return _record(StepRunRecord, row)

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """The step runs of a run, in the order they started."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.step_runs)
                .where(t.step_runs.c.run_id == run_id)
                .order_by(t.step_runs.c.started, t.step_runs.c.step_id)
            ).all()
        return [_record(StepRunRecord, r) for r in rows]

    def step_run_artifacts(self, step_run_id: str, *, inputs: bool) -> dict[str, ArtifactRecord]:
        """``{name: artifact}`` of a step run's inputs or outputs."""
        if inputs:
            link = t.step_run_inputs
            stmt = (
                sa.select(link.c.name.label("link_name"), _AV)
                .join(_AV, _AV.c.id == link.c.artifact_id)
                .where(link.c.step_run_id == step_run_id)
                .order_by(link.c.name)
            )
            with self.read() as conn:
                rows = conn.execute(stmt).all()
        else:
            with self.read() as conn:
                rows = conn.execute(_Q_OUTPUTS, {"step_run": step_run_id}).all()
        return {r.link_name: _record(ArtifactRecord, r) for r in rows}

    def outputs_of_step(self, run_id: str, step_id: str) -> dict[str, ArtifactRecord]:
        """Outputs of the step ``step_id`` in a run (for resolving downstream inputs)."""
        with self.read() as conn:
            rows = conn.execute(_Q_STEP_OUTPUTS, {"run": run_id, "step": step_id}).all()
        if not rows or rows[0].step_status not in RunStatus.SUCCEEDED:
            raise NotFoundError(f"step {step_id!r} has not finished in this run", "run the steps in order")
        return {r.link_name: _record(ArtifactRecord, r) for r in rows if r.link_name is not None}

    def find_cached(self, cache_key: str, limit: int = 5) -> list[tuple[StepRunRecord, dict[str, ArtifactRecord]]]:
        """Completed step runs with this cache key, newest first, with their outputs."""
        with self.read() as conn:
            rows = conn.execute(_Q_CACHED, {"key": cache_key, "limit": limit}).all()
            found = []
            for row in rows:
                outputs = conn.execute(_Q_OUTPUTS, {"step_run": row.id}).all()
                found.append((_record(StepRunRecord, row), {r.link_name: _record(ArtifactRecord, r) for r in outputs}))
        return found

    def complete_step_run(
        self,
        step_run_id: str,
        *,
        inputs: Mapping[str, str],
        new_artifacts: Mapping[str, dict[str, Any]],
        **values: Any,
    ) -> dict[str, str]:
        """Register a step's new artifacts and mark it completed, in one transaction.

        Returns ``{output name: artifact id}``.
        """
        for attempt in range(10):
            stamp = now()
            try:
                with self.write() as conn:
                    outputs: dict[str, str] = {}
                    for output, art in new_artifacts.items():
                        latest = conn.execute(_Q_MAX_VERSION, {"name": art["name"]}).scalar()
                        aid = new_id()
                        conn.execute(
                            _I_ARTIFACT,
                            {
                                "id": aid,
                                "version": (latest or 0) + 1,
                                "created": stamp,
                                "producer_step_run_id": step_run_id,
                                **art,
                            },
                        )
                        outputs[output] = aid
                    conn.execute(
                        _U_STEP_RUN.values(status=RunStatus.COMPLETED, ended=stamp, **values),
                        {"step_run_id": step_run_id},
                    )
                    self._link(conn, step_run_id, inputs, outputs)
                return outputs
            except IntegrityError:
                if attempt == 9:
                    raise
                time.sleep(0.02)  # a concurrent writer took a version number
        raise AssertionError("unreachable")

    # -- artifacts -------------------------------------------------------------------
    def create_artifact_version(self, **values: Any) -> ArtifactRecord:
        """Register an artifact whose bytes are complete; numbers its version."""
        values.setdefault("id", new_id())
        values.setdefault("created", now())
        values.setdefault("metadata", {})
        values.setdefault("visualizations", {})
        for _ in range(10):
            try:
                with self.write() as conn:
                    latest = conn.execute(
                        sa.select(sa.func.max(t.artifact_versions.c.version)).where(
                            t.artifact_versions.c.name == values["name"]
                        )
                    ).scalar()
                    conn.execute(t.artifact_versions.insert().values(version=(latest or 0) + 1, **values))
                break
            except IntegrityError:
                time.sleep(0.02)  # a concurrent writer took that version number
        else:
            raise StoreError(f"cannot number a new version of artifact {values['name']!r}")
        return self.get_artifact(values["id"])

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """An artifact version by id."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.artifact_versions).where(t.artifact_versions.c.id == artifact_id)).first()
        if row is None:
            raise NotFoundError(f"no artifact version {artifact_id!r}", "see `conveyor artifact list`")
        return _record(ArtifactRecord, row)

    def list_artifacts(self, name: str | None = None) -> list[ArtifactRecord]:
        """Artifact versions, newest first."""
        stmt = sa.select(t.artifact_versions).order_by(
            t.artifact_versions.c.created.desc(), t.artifact_versions.c.version.desc()
        )
        if name is not None:
            stmt = stmt.where(t.artifact_versions.c.name == name)
        with self.read() as conn:
            return [_record(ArtifactRecord, r) for r in conn.execute(stmt).all()]

    def artifact_consumers(self, artifact_id: str) -> list[StepRunRecord]:
        """Step runs that took this artifact as an input."""
        stmt = (
            sa.select(t.step_runs)
            .join(t.step_run_inputs, t.step_run_inputs.c.step_run_id == t.step_runs.c.id)
            .where(t.step_run_inputs.c.artifact_id == artifact_id)
            .order_by(t.step_runs.c.started)
        )
        with self.read() as conn:
            return [_record(StepRunRecord, r) for r in conn.execute(stmt).all()]

    # -- stack components and stacks -------------------------------------------------
    def create_component(self, type_: str, flavor: str, name: str, config: Mapping[str, Any]) -> ComponentRecord:
        """Register a stack component."""
        stamp = now()
        try:
            with self.write() as conn:
                cid = new_id()
                conn.execute(
                    t.stack_components.insert().values(
                        id=cid, type=type_, flavor=flavor, name=name, config=dict(config), created=stamp, updated=stamp
                    )
                )
        except IntegrityError:
            raise StoreError(
                f"a {type_.replace('_', '-')} named {name!r} already exists",
                f"pick another name or `conveyor {type_.replace('_', '-')} update {name}`",
            ) from None
        return self.get_component(type_, name)

    def get_component(self, type_: str, name: str) -> ComponentRecord:
        """A stack component by type and name."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(t.stack_components).where(
                    t.stack_components.c.type == type_, t.stack_components.c.name == name
                )
            ).first()
        if row is None:
            kind = type_.replace("_", "-")
            raise NotFoundError(f"no {kind} named {name!r}", f"see `conveyor {kind} list`")
        return _record(ComponentRecord, row)

    def list_components(self, type_: str | None = None) -> list[ComponentRecord]:
        """Registered components, by type and name."""
        stmt = sa.select(t.stack_components).order_by(t.stack_components.c.type, t.stack_components.c.name)
        if type_ is not None:
            stmt = stmt.where(t.stack_components.c.type == type_)
        with self.read() as conn:
            return [_record(ComponentRecord, r) for r in conn.execute(stmt).all()]

    def update_component(self, type_: str, name: str, config: Mapping[str, Any]) -> ComponentRecord:
        """Replace a component's config."""
        record = self.get_component(type_, name)
        with self.write() as conn:
            conn.execute(
                t.stack_components.update()
                .where(t.stack_components.c.id == record.id)
                .values(config=dict(config), updated=now())
            )
        return self.get_component(type_, name)

    def delete_component(self, type_: str, name: str) -> None:
        """Delete a component that no stack uses."""
        record = self.get_component(type_, name)
        with self.write() as conn:
            users = (
                conn.execute(
                    sa.select(t.stacks.c.name)
                    .join(t.stack_members, t.stack_members.c.stack_id == t.stacks.c.id)
                    .where(t.stack_members.c.component_id == record.id)
                )
                .scalars()
                .all()
            )
            if users:
                raise StoreError(
                    f"{type_.replace('_', '-')} {name!r} is used by stack {sorted(users)[0]!r}",
                    "remove it from that stack first",
                )
            conn.execute(t.stack_components.delete().where(t.stack_components.c.id == record.id))

    def save_stack(self, name: str, component_ids: Mapping[str, str], *, create: bool) -> StackRecord:
        """Create a stack, or replace the members of an existing one."""
        stamp = now()
        try:
            with self.write() as conn:
                row = conn.execute(sa.select(t.stacks.c.id).where(t.stacks.c.name == name)).first()
                if create:
                    if row is not None:
                        raise StoreError(
                            f"a stack named {name!r} already exists", f"use `conveyor stack update {name}`"
                        )
                    sid = new_id()
                    conn.execute(t.stacks.insert().values(id=sid, name=name, created=stamp, updated=stamp))
                else:
                    if row is None:
                        raise NotFoundError(f"no stack named {name!r}", "see `conveyor stack list`")
                    sid = row.id
                    conn.execute(t.stacks.update().where(t.stacks.c.id == sid).values(updated=stamp))
                    conn.execute(t.stack_members.delete().where(t.stack_members.c.stack_id == sid))
                conn.execute(
                    t.stack_members.insert(),
                    [{"stack_id": sid, "component_type": k, "component_id": v} for k, v in component_ids.items()],
                )
        except IntegrityError:
            raise StoreError(f"a stack named {name!r} already exists", f"use `conveyor stack update {name}`") from None
        return self.get_stack(name)

    def ensure_stack(self, name: str, components: Mapping[str, tuple[str, str, dict[str, Any]]]) -> None:
        """Create a stack and its missing components in one transaction, unless the stack exists.

        ``components`` maps a component type to ``(name, flavor, config)``.
        """
        query = sa.select(t.stacks.c.id).where(t.stacks.c.name == name)
        with self.read() as conn:
            if conn.execute(query).first() is not None:
                return  # the common case: no write lock taken
        stamp = now()
        with self.write() as conn:
            if conn.execute(query).first() is not None:
                return
            members = {}
            for ctype, (cname, flavor, config) in components.items():
                cid = conn.execute(
                    sa.select(t.stack_components.c.id).where(
                        t.stack_components.c.type == ctype, t.stack_components.c.name == cname
                    )
                ).scalar()
                if cid is None:
                    cid = new_id()
                    conn.execute(
                        t.stack_components.insert().values(
                            id=cid, type=ctype, flavor=flavor, name=cname, config=config, created=stamp, updated=stamp
                        )
                    )
                members[ctype] = cid
            sid = new_id()
            conn.execute(t.stacks.insert().values(id=sid, name=name, created=stamp, updated=stamp))
            conn.execute(
                t.stack_members.insert(),
                [{"stack_id": sid, "component_type": k, "component_id": v} for k, v in members.items()],
            )

    def get_stack(self, name: str) -> StackRecord:
        """A stack with its components."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.stacks).where(t.stacks.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no stack named {name!r}", "see `conveyor stack list`")
            members = conn.execute(
                sa.select(t.stack_members.c.component_type, t.stack_components)
                .join(t.stack_components, t.stack_components.c.id == t.stack_members.c.component_id)
                .where(t.stack_members.c.stack_id == row.id)
            ).all()
        components = {m.component_type: _record(ComponentRecord, m) for m in members}
        return StackRecord(
            id=row.id, name=row.name, components=components, created=_aware(row.created), updated=_aware(row.updated)
        )

    def list_stacks(self) -> list[StackRecord]:
        """Every stack with its components, by name."""
        with self.read() as conn:
            names = conn.execute(sa.select(t.stacks.c.name).order_by(t.stacks.c.name)).scalars().all()
        return [self.get_stack(n) for n in names]

    def delete_stack(self, name: str) -> None:
        """Delete a stack (its components stay)."""
        record = self.get_stack(name)
        with self.write() as conn:
            conn.execute(t.stack_members.delete().where(t.stack_members.c.stack_id == record.id))
            conn.execute(t.stacks.delete().where(t.stacks.c.id == record.id))


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]
