"""Pipeline runs in the SQL store."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._records import RunRecord, RunStatus, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, to_record

_RUNS = t.pipeline_runs


class RunTables(SqlDatabase):
    """Pipeline runs: creating, joining, settling, reading."""

    def create_run(self, **values: Any) -> RunRecord:
        """Insert a pipeline run (``id``/``created``/``extra`` filled in when absent)."""
        values.setdefault("id", new_id())
        values.setdefault("created", now())
        values.setdefault("extra", {})
        values.setdefault("parameters", {})
        try:
            with self.write() as conn:
                conn.execute(_RUNS.insert().values(**values))
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
                return to_record(RunRecord, row)
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
        """A run by id or name."""
        with self.read() as conn:
            row = conn.execute(sa.select(_RUNS).where(sa.or_(_RUNS.c.id == run_id, _RUNS.c.name == run_id))).first()
        if row is None:
            raise NotFoundError(f"no run {run_id!r}", "see `conveyor pipeline runs`")
        return to_record(RunRecord, row)

    def list_runs(
        self, pipeline_id: str | None = None, limit: int | None = None, *, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, newest first."""
        stmt = sa.select(_RUNS).order_by(_RUNS.c.created.desc(), _RUNS.c.id)
        if pipeline_id is not None:
            stmt = stmt.where(_RUNS.c.pipeline_id == pipeline_id)
        if status is not None:
            stmt = stmt.where(_RUNS.c.status == status)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.read() as conn:
            return [to_record(RunRecord, r) for r in conn.execute(stmt).all()]
