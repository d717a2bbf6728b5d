"""Artifact versions in the SQL store, numbered per artifact name."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._records import ArtifactRecord, StepRunRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, to_record

T = TypeVar("T")
_AV = t.artifact_versions
_Q_MAX_VERSION = sa.select(sa.func.max(_AV.c.version)).where(_AV.c.name == sa.bindparam("name"))
_I_ARTIFACT = _AV.insert()
_LOCK_NAME = sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))")
_VERSION_ATTEMPTS = 20


def insert_artifact(conn: sa.Connection, values: dict[str, Any]) -> str:
    """Insert an artifact version numbered one past the newest of its name; returns its id.

    Two writers may pick the same number: the unique (name, version) index
    refuses the second, whose transaction :meth:`ArtifactTables.numbering`
    runs again.
    """
    if conn.dialect.name == "postgresql":
        # Writers of one name take turns (until their transaction ends) instead of racing for a number:
        # a team server's steps all write at once.
        conn.execute(_LOCK_NAME, {"name": values["name"]})
    latest = conn.execute(_Q_MAX_VERSION, {"name": values["name"]}).scalar()
    values = {"id": new_id(), "created": now(), "metadata": {}, "visualizations": {}, **values}
    conn.execute(_I_ARTIFACT, {**values, "version": (latest or 0) + 1})
    return str(values["id"])


class ArtifactTables(SqlDatabase):
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
        """An artifact version by id."""
        with self.read() as conn:
            row = conn.execute(sa.select(_AV).where(_AV.c.id == artifact_id)).first()
        if row is None:
            raise NotFoundError(f"no artifact version {artifact_id!r}", "see `conveyor artifact list`")
        return to_record(ArtifactRecord, row)

    def list_artifacts(self, name: str | None = None) -> list[ArtifactRecord]:
        """Artifact versions, newest first."""
        stmt = sa.select(_AV).order_by(_AV.c.created.desc(), _AV.c.version.desc())
        if name is not None:
            stmt = stmt.where(_AV.c.name == name)
        with self.read() as conn:
            return [to_record(ArtifactRecord, r) for r in conn.execute(stmt).all()]

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
