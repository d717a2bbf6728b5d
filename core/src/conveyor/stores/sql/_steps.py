"""Step runs, their artifact links and the cache in the SQL store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import NotFoundError, RunSettledError
from conveyor.stores._records import ArtifactRecord, RunStatus, StepRunRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._artifacts import ArtifactTables, insert_artifact
from conveyor.stores.sql._engine import aware, to_record

# Statements on the path every step takes, built once: building SQLAlchemy
# statement objects costs more than running them on SQLite.
_SR = t.step_runs
_AV = t.artifact_versions
_OUT = t.step_run_outputs
_IN = t.step_run_inputs
_Q_OUTPUTS = (
    sa.select(_OUT.c.name.label("link_name"), _AV)
    .join(_AV, _AV.c.id == _OUT.c.artifact_id)
    .where(_OUT.c.step_run_id == sa.bindparam("step_run"))
    .order_by(_OUT.c.name)
)
_Q_INPUTS = (
    sa.select(_IN.c.name.label("link_name"), _AV)
    .join(_AV, _AV.c.id == _IN.c.artifact_id)
    .where(_IN.c.step_run_id == sa.bindparam("step_run"))
    .order_by(_IN.c.name)
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
_I_STEP_RUN = _SR.insert()
_I_INPUT = _IN.insert()
_I_OUTPUT = _OUT.insert()
_U_STEP_RUN = _SR.update().where(_SR.c.id == sa.bindparam("step_run_id"))
_STEP_RUN_FIELDS = tuple(f.name for f in fields(StepRunRecord))
_RUNS = t.pipeline_runs
_Q_RUN_STATUS = sa.select(_RUNS.c.status, _RUNS.c.name).where(_RUNS.c.id == sa.bindparam("run"))
_Q_RUN_OF_STEP = sa.select(_RUNS.c.status, _RUNS.c.name).where(
    _RUNS.c.id == sa.select(_SR.c.run_id).where(_SR.c.id == sa.bindparam("step_run")).scalar_subquery()
)
# A step's run and its step run (if any) in one query: the run must still be running for the step to start.
_Q_RUN_AND_STEP_RUN = (
    sa.select(_RUNS.c.status.label("run_status"), _RUNS.c.name.label("run_name"), *_SR.c)
    .select_from(_RUNS.outerjoin(_SR, sa.and_(_SR.c.run_id == _RUNS.c.id, _SR.c.step_id == sa.bindparam("step"))))
    .where(_RUNS.c.id == sa.bindparam("run"))
)
# Completes a step run only while its run is running: the check and the write are one statement.
_U_STEP_RUN_IF_RUNNING = _U_STEP_RUN.where(
    sa.select(_RUNS.c.status).where(_RUNS.c.id == _SR.c.run_id).scalar_subquery() == RunStatus.RUNNING
)


def _require_running(conn: sa.Connection, query: Any, params: dict[str, str]) -> None:
    row = conn.execute(query, params).first()
    if row is not None:
        _refuse_settled(row.status, row.name)


def _refuse_settled(status: str, run_name: str) -> None:
    if status != RunStatus.RUNNING:
        raise RunSettledError(
            f"run {run_name!r} is already {status}: nothing more is recorded into it",
            "its driver was stopped or killed; run the pipeline again",
        )


def _link(conn: sa.Connection, step_run_id: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    if inputs:
        conn.execute(_I_INPUT, [{"step_run_id": step_run_id, "name": k, "artifact_id": v} for k, v in inputs.items()])
    if outputs:
        conn.execute(_I_OUTPUT, [{"step_run_id": step_run_id, "name": k, "artifact_id": v} for k, v in outputs.items()])


def _artifacts(rows: Any) -> dict[str, ArtifactRecord]:
    return {r.link_name: to_record(ArtifactRecord, r) for r in rows}


class StepRunTables(ArtifactTables):
    """Step runs: starting, finishing, caching, and the artifacts they read and wrote."""

    def start_step_run(
        self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any
    ) -> StepRunRecord:
        """Record that a step started (or started another attempt); returns its record."""
        with self.write() as conn:
            found = conn.execute(_Q_RUN_AND_STEP_RUN, {"run": run_id, "step": step_id}).first()
            if found is not None and require_running:
                _refuse_settled(found.run_status, found.run_name)
            row = found if found is not None and found.id is not None else None
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
                    **{f: row._mapping[f] for f in _STEP_RUN_FIELDS},
                    "status": RunStatus.RUNNING,
                    "attempts": row.attempts + 1,
                    "started": now(),
                    "ended": None,
                    "error": None,
                    "metadata": None,  # what the failed attempt logged is not this attempt's
                    **values,
                }
                changes = {k: data[k] for k in ("status", "attempts", "started", "ended", "error", "metadata", *values)}
                conn.execute(_U_STEP_RUN, {**changes, "step_run_id": row.id})
                for link in (_IN, _OUT):  # links of the failed attempt
                    conn.execute(link.delete().where(link.c.step_run_id == row.id))
        return StepRunRecord(**{f: aware(data.get(f)) for f in _STEP_RUN_FIELDS})

    def record_step_run(self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any) -> str:
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
            if require_running:
                _require_running(conn, _Q_RUN_STATUS, {"run": run_id})
            conn.execute(_I_STEP_RUN, data)
            _link(conn, data["id"], inputs, outputs)
        return str(data["id"])

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
            conn.execute(_SR.update().where(_SR.c.id == step_run_id).values(status=status, ended=now(), **values))
            _link(conn, step_run_id, inputs or {}, outputs or {})

    def complete_step_run(
        self,
        step_run_id: str,
        *,
        inputs: Mapping[str, str],
        new_artifacts: Mapping[str, dict[str, Any]],
        require_running: bool = False,
        **values: Any,
    ) -> dict[str, str]:
        """Register a step's new artifacts and mark it completed, in one transaction.

        Returns ``{output name: artifact id}``.
        """

        def transaction(conn: sa.Connection) -> dict[str, str]:
            stamp = now()
            changes = {**values, "status": RunStatus.COMPLETED, "ended": stamp, "step_run_id": step_run_id}
            if require_running:
                done = conn.execute(_U_STEP_RUN_IF_RUNNING, changes)
                if done.rowcount == 0:  # its run was settled (or there is no such step run)
                    _require_running(conn, _Q_RUN_OF_STEP, {"step_run": step_run_id})
            else:
                conn.execute(_U_STEP_RUN, changes)
            # By artifact name: transactions that lock several names (PostgreSQL) take them in one order.
            outputs = {
                output: insert_artifact(conn, {**art, "created": stamp, "producer_step_run_id": step_run_id})
                for output, art in sorted(new_artifacts.items(), key=lambda item: item[1]["name"])
            }
            _link(conn, step_run_id, inputs, outputs)
            return outputs

        return self.numbering(transaction, "the outputs of a step")

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        """A step run by id or unique id prefix."""
        with self.read() as conn:
            row = conn.execute(sa.select(_SR).where(_SR.c.id == step_run_id)).first()
        if row is None:
            full = self.resolve_id("step_run", step_run_id)
            with self.read() as conn:
                row = conn.execute(sa.select(_SR).where(_SR.c.id == full)).first()
            if row is None:
                raise NotFoundError(f"no step run {step_run_id!r}")
        return to_record(StepRunRecord, row)

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """The step runs of a run, in the order they started."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(_SR).where(_SR.c.run_id == run_id).order_by(_SR.c.started, _SR.c.step_id)
            ).all()
        return [to_record(StepRunRecord, r) for r in rows]

    def step_run_artifacts(self, step_run_id: str, *, inputs: bool) -> dict[str, ArtifactRecord]:
        """``{name: artifact}`` of a step run's inputs or outputs."""
        with self.read() as conn:
            return _artifacts(conn.execute(_Q_INPUTS if inputs else _Q_OUTPUTS, {"step_run": step_run_id}).all())

    def outputs_of_step(self, run_id: str, step_id: str) -> dict[str, ArtifactRecord]:
        """Outputs of the step ``step_id`` in a run (for resolving downstream inputs)."""
        with self.read() as conn:
            rows = conn.execute(_Q_STEP_OUTPUTS, {"run": run_id, "step": step_id}).all()
        if not rows or rows[0].step_status not in RunStatus.SUCCEEDED:
            raise NotFoundError(f"step {step_id!r} has not finished in this run", "run the steps in order")
        return _artifacts(r for r in rows if r.link_name is not None)

    def find_cached(self, cache_key: str, limit: int = 5) -> list[tuple[StepRunRecord, dict[str, ArtifactRecord]]]:
        """Completed step runs with this cache key, newest first, with their outputs."""
        with self.read() as conn:
            rows = conn.execute(_Q_CACHED, {"key": cache_key, "limit": limit}).all()
            return [
                (to_record(StepRunRecord, row), _artifacts(conn.execute(_Q_OUTPUTS, {"step_run": row.id}).all()))
                for row in rows
            ]
