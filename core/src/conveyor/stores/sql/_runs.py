"""Pipeline runs in the SQL store."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._interface import LATEST, check_tags
from conveyor.stores._records import RunRecord, RunStatus, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import to_record
from conveyor.stores.sql._ids import IdTables

_RUNS = t.pipeline_runs
_TAGS = t.run_tags
_SR = t.step_runs
_CHUNK = 500  # ids per IN (...) list: SQLite's and the servers' limits on bound parameters are far above


def _tags_of(conn: sa.Connection, run_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for i in range(0, len(run_ids), _CHUNK):
        rows = conn.execute(sa.select(_TAGS.c.run_id, _TAGS.c.tag).where(_TAGS.c.run_id.in_(run_ids[i : i + _CHUNK])))
        for run_id, tag in rows:
            found.setdefault(run_id, []).append(tag)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def _with_tags(conn: sa.Connection, rows: Sequence[Any]) -> list[RunRecord]:
    records = [to_record(RunRecord, r) for r in rows]
    tags = _tags_of(conn, [r.id for r in records]) if records else {}
    return [dataclasses.replace(r, tags=tags[r.id]) if r.id in tags else r for r in records]


class RunTables(IdTables):
    """Pipeline runs: creating, joining, settling, tagging, deleting, reading."""

    def create_run(self, **values: Any) -> RunRecord:
        """Insert a pipeline run (``id``/``created``/``extra`` filled in when absent; ``tags`` to start with)."""
        tags = check_tags(values.pop("tags", None) or ())
        values.setdefault("id", new_id())
        values.setdefault("created", now())
        values.setdefault("extra", {})
        values.setdefault("parameters", {})
        try:
            with self.write() as conn:
                conn.execute(_RUNS.insert().values(**values))
                if tags:
                    conn.execute(_TAGS.insert(), [{"run_id": values["id"], "tag": tag} for tag in tags])
        except IntegrityError:
            if values.get("run_key") is not None or self._run_name_free(values["name"]):
                raise
            raise StoreError(
                f"a run named {values['name']!r} already exists",
                "give each run its own name: put {date} and {time} in run_name, or leave run_name out",
            ) from None
        return self.get_run(values["id"])

    def _run_name_free(self, name: str) -> bool:
        with self.read() as conn:
            return conn.execute(sa.select(_RUNS.c.id).where(_RUNS.c.name == name)).first() is None

    def join_run(self, run_key: str, **values: Any) -> RunRecord:
        """The run with this engine run key, created by whichever step asks first."""
        for _ in range(5):
            with self.read() as conn:
                row = conn.execute(sa.select(_RUNS).where(_RUNS.c.run_key == run_key)).first()
                if row is not None:
                    return _with_tags(conn, [row])[0]
            try:
                return self.create_run(run_key=run_key, **values)
            except (IntegrityError, StoreError):
                time.sleep(0.05)
        raise StoreError(f"cannot create the run for {run_key!r}")

    def update_run(self, run_id: str, *, only_if_status: str | None = None, **values: Any) -> bool:
        """Change fields of a run; with ``only_if_status`` only while it has that status."""
        stmt = _RUNS.update().where(_RUNS.c.id == run_id)
        if only_if_status is not None:
            stmt = stmt.where(_RUNS.c.status == only_if_status)
        with self.write() as conn:
            return conn.execute(stmt.values(**values)).rowcount > 0

    def settle_run(
        self, run_id: str, status: str, *, error: str | None = None, running_steps: str | None = None
    ) -> bool:
        """Give a running run its final status; see :meth:`MetadataStore.settle_run`."""
        stamp = now()
        with self.write() as conn:
            if running_steps is not None:
                conn.execute(
                    t.step_runs.update()
                    .where(t.step_runs.c.run_id == run_id, t.step_runs.c.status == RunStatus.RUNNING)
                    .values(status=running_steps, ended=stamp, error=error)
                )
            changed = conn.execute(
                _RUNS.update()
                .where(_RUNS.c.id == run_id, _RUNS.c.status == RunStatus.RUNNING)
                .values(status=status, ended=stamp, error=error)
            )
            return changed.rowcount > 0

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, name, unique id prefix, or ``latest``."""
        with self.read() as conn:
            row = conn.execute(sa.select(_RUNS).where(sa.or_(_RUNS.c.id == run_id, _RUNS.c.name == run_id))).first()
            if row is None and run_id == LATEST:
                row = conn.execute(sa.select(_RUNS).order_by(_RUNS.c.created.desc(), _RUNS.c.id).limit(1)).first()
                if row is None:
                    raise NotFoundError("there are no runs yet, so none is the latest", "run a pipeline first")
            if row is not None:
                return _with_tags(conn, [row])[0]
        full = self.resolve_id("run", run_id)
        with self.read() as conn:
            row = conn.execute(sa.select(_RUNS).where(_RUNS.c.id == full)).first()
            if row is None:  # deleted in between
                raise NotFoundError(f"no run {run_id!r}", "see `conveyor pipeline runs`")
            return _with_tags(conn, [row])[0]

    def list_runs(
        self,
        pipeline_id: str | None = None,
        limit: int | None = None,
        *,
        status: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Runs, newest first (of one pipeline, with one status, with every tag of ``tags``)."""
        stmt = sa.select(_RUNS).order_by(_RUNS.c.created.desc(), _RUNS.c.id)
        if pipeline_id is not None:
            stmt = stmt.where(_RUNS.c.pipeline_id == pipeline_id)
        if status is not None:
            stmt = stmt.where(_RUNS.c.status == status)
        for tag in dict.fromkeys(tags):
            stmt = stmt.where(
                sa.exists().where(_TAGS.c.run_id == _RUNS.c.id, _TAGS.c.tag == tag)  # a bound value, never SQL
            )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.read() as conn:
            return _with_tags(conn, conn.execute(stmt).all())

    def tag_run(self, run_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> tuple[str, ...]:
        """Add and remove tags of a run; returns its tags."""
        run = self.get_run(run_id)
        adding = check_tags(add)
        with self.write() as conn:
            if remove:
                conn.execute(_TAGS.delete().where(_TAGS.c.run_id == run.id, _TAGS.c.tag.in_(list(remove))))
            have = set(_tags_of(conn, [run.id]).get(run.id, ()))
            new = [tag for tag in adding if tag not in have]
            if new:
                conn.execute(_TAGS.insert(), [{"run_id": run.id, "tag": tag} for tag in new])
            return _tags_of(conn, [run.id]).get(run.id, ())

    def delete_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Delete a run, its step runs, tags and artifact links; returns its log files nothing else refers to."""
        run = self.get_run(run_id)
        if run.status == RunStatus.RUNNING and not force:
            raise StoreError(
                f"run {run.name!r} is running", "stop it first (Ctrl-C its driver, or cancel it in its engine)"
            )
        with self.write() as conn:
            own = conn.execute(sa.select(_SR.c.id, _SR.c.logs_uri).where(_SR.c.run_id == run.id)).all()
            ids = [r.id for r in own]
            # Cached steps show the logs of the run that ran them: those go with the last step run showing them.
            logs = {r.logs_uri for r in own if r.logs_uri}
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                for link in (t.step_run_inputs, t.step_run_outputs):
                    conn.execute(link.delete().where(link.c.step_run_id.in_(chunk)))
                # The artifacts stay (later runs may reuse them from the cache); they no longer have a producer.
                conn.execute(
                    t.artifact_versions.update()
                    .where(t.artifact_versions.c.producer_step_run_id.in_(chunk))
                    .values(producer_step_run_id=None)
                )
            conn.execute(_SR.delete().where(_SR.c.run_id == run.id))
            conn.execute(_TAGS.delete().where(_TAGS.c.run_id == run.id))
            conn.execute(_RUNS.delete().where(_RUNS.c.id == run.id))
            still = set()
            if logs:
                still = set(conn.execute(sa.select(_SR.c.logs_uri).where(_SR.c.logs_uri.in_(sorted(logs)))).scalars())
        return sorted(logs - still)
