"""Artifact versions in the SQL store, numbered per artifact name."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._records import ArtifactRecord, RunRecord, StepRunRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import to_record
from conveyor.stores.sql._ids import IdTables

T = TypeVar("T")
_AV = t.artifact_versions
_Q_MAX_VERSION = sa.select(sa.func.max(_AV.c.version)).where(_AV.c.name == sa.bindparam("name"))
_I_ARTIFACT = _AV.insert()
# Numbered where it is inserted, in one statement. MySQL/MariaDB refuse a subquery on the table
# being inserted into: there the newest number is read first.
_I_NUMBERED_ARTIFACT = _AV.insert().values(
    version=sa.select(sa.func.coalesce(sa.func.max(_AV.c.version), 0) + 1)
    .where(_AV.c.name == sa.bindparam("numbered_name"))
    .scalar_subquery()
)
_LOCK_NAME = sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))")
_VERSION_ATTEMPTS = 20


def insert_artifact(conn: sa.Connection, values: dict[str, Any]) -> str:
    """Insert an artifact version numbered one past the newest of its name; returns its id.

    Two writers may pick the same number: the unique (name, version) index
    refuses the second, whose transaction :meth:`ArtifactTables.numbering`
    runs again.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # Writers of one name take turns (until their transaction ends) instead of racing for a number:
        # a team server's steps all write at once.
        conn.execute(_LOCK_NAME, {"name": values["name"]})
    values = {"id": new_id(), "created": now(), "metadata": {}, "visualizations": {}, **values}
    if dialect in ("mysql", "mariadb"):
        latest = conn.execute(_Q_MAX_VERSION, {"name": values["name"]}).scalar()
        conn.execute(_I_ARTIFACT, {**values, "version": (latest or 0) + 1})
    else:
        conn.execute(_I_NUMBERED_ARTIFACT, {**values, "numbered_name": values["name"]})
    return str(values["id"])


class ArtifactTables(IdTables):
    """Artifact versions and who made and used them."""

    def numbering(self, transaction: Callable[[sa.Connection], T], what: str) -> T:
        """Run a write transaction that numbers artifact versions, again when a concurrent writer took a number."""
        for attempt in range(_VERSION_ATTEMPTS):
            try:
                with self.write() as conn:
                    return transaction(conn)
            except IntegrityError:
                time.sleep(random.uniform(0.01, 0.03) * (attempt + 1))  # jitter: racing writers spread out
        raise StoreError(f"cannot number a new version of {what}: too many concurrent writers", "try again")

    def create_artifact_version(self, **values: Any) -> ArtifactRecord:
        """Register an artifact whose bytes are complete; numbers its version."""
        artifact_id = self.numbering(lambda conn: insert_artifact(conn, dict(values)), f"artifact {values['name']!r}")
        return self.get_artifact(artifact_id)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """An artifact version by id or unique id prefix."""
        with self.read() as conn:
            row = conn.execute(sa.select(_AV).where(_AV.c.id == artifact_id)).first()
        if row is None:
            full = self.resolve_id("artifact", artifact_id)
            with self.read() as conn:
                row = conn.execute(sa.select(_AV).where(_AV.c.id == full)).first()
            if row is None:
                raise NotFoundError(f"no artifact version {artifact_id!r}", "see `conveyor artifact list`")
        return to_record(ArtifactRecord, row)

    def list_artifacts(
        self,
        name: str | None = None,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        limit: int | None = None,
        removed: bool = False,
    ) -> list[ArtifactRecord]:
        """Artifact versions, newest first; see :meth:`MetadataStore.list_artifacts`."""
        stmt = sa.select(_AV).order_by(_AV.c.created.desc(), _AV.c.version.desc(), _AV.c.id)
        if name is not None:
            # "::" cannot be part of a name, so "::model" ends only names whose output is model.
            stmt = stmt.where(sa.or_(_AV.c.name == name, _AV.c.name.endswith(f"::{name}", autoescape=True)))
        if pipeline is not None:
            stmt = stmt.where(_AV.c.pipeline_name == pipeline)
        if step is not None:
            stmt = stmt.where(_AV.c.step_id == step)
        if not removed:
            stmt = stmt.where(_AV.c.removed.is_(None))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.read() as conn:
            return [to_record(ArtifactRecord, r) for r in conn.execute(stmt).all()]

    def runs_using_artifact(self, artifact_id: str) -> list[RunRecord]:
        """Runs that made, read or reused this artifact, newest first."""
        from conveyor.stores.sql._runs import _with_tags

        runs = t.pipeline_runs
        users = sa.union(
            sa.select(t.step_run_inputs.c.step_run_id.label("sr")).where(
                t.step_run_inputs.c.artifact_id == artifact_id
            ),
            sa.select(t.step_run_outputs.c.step_run_id.label("sr")).where(
                t.step_run_outputs.c.artifact_id == artifact_id
            ),
        ).subquery()
        stmt = (
            sa.select(runs)
            .where(runs.c.id.in_(sa.select(t.step_runs.c.run_id).where(t.step_runs.c.id.in_(sa.select(users.c.sr)))))
            .order_by(runs.c.created.desc(), runs.c.id)
        )
        with self.read() as conn:
            return _with_tags(conn, conn.execute(stmt).all())

    def unreferenced_artifacts(self) -> list[ArtifactRecord]:
        """Artifacts made by runs that no run uses any more, files not yet removed."""
        stmt = (
            sa.select(_AV)
            .where(
                _AV.c.removed.is_(None),
                _AV.c.producer_step_run_id.is_(None),
                _AV.c.pipeline_name.is_not(None),  # made by a run (saved values have no pipeline)
                ~sa.exists().where(t.step_run_inputs.c.artifact_id == _AV.c.id),
                ~sa.exists().where(t.step_run_outputs.c.artifact_id == _AV.c.id),
            )
            .order_by(_AV.c.created, _AV.c.id)
        )
        with self.read() as conn:
            return [to_record(ArtifactRecord, r) for r in conn.execute(stmt).all()]

    def mark_artifact_removed(self, artifact_id: str) -> None:
        """Record that an artifact's files were removed."""
        with self.write() as conn:
            conn.execute(_AV.update().where(_AV.c.id == artifact_id, _AV.c.removed.is_(None)).values(removed=now()))

    def artifact_consumers(self, artifact_id: str) -> list[StepRunRecord]:
        """Step runs that took this artifact as an input."""
        stmt = (
            sa.select(t.step_runs)
            .join(t.step_run_inputs, t.step_run_inputs.c.step_run_id == t.step_runs.c.id)
            .where(t.step_run_inputs.c.artifact_id == artifact_id)
            .order_by(t.step_runs.c.started)
        )
        with self.read() as conn:
            return [to_record(StepRunRecord, r) for r in conn.execute(stmt).all()]
