"""Pipelines and their deployments in the SQL store."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._records import PipelineRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, to_record


class PipelineTables(SqlDatabase):
    """Pipelines and deployments."""

    def get_or_create_pipeline(self, name: str) -> PipelineRecord:
        """The pipeline of this name, created on first use."""
        for _ in range(3):
            with self.read() as conn:
                row = conn.execute(sa.select(t.pipelines).where(t.pipelines.c.name == name)).first()
            if row is not None:
                return to_record(PipelineRecord, row)
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
        return to_record(PipelineRecord, row)

    def list_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline, by name."""
        with self.read() as conn:
            rows = conn.execute(sa.select(t.pipelines).order_by(t.pipelines.c.name)).all()
        return [to_record(PipelineRecord, r) for r in rows]

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
        return str(ir)
