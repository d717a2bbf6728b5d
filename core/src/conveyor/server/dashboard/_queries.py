"""What the dashboard's pages read: one SQL query per list, never one per row.

Pages read the SQL store directly (the embedded store, or the server's
database): a runs page is one ``SELECT`` with its total as a window count,
a run page three (the run, its step runs, their artifacts). Deployments
are content-addressed and never change, so their parsed IR is kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import NotFoundError
from conveyor.stores import ArtifactRecord, RunRecord, RunStatus, StepRunRecord, now
from conveyor.stores.sql import SqlStore
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import aware, to_record

PER_PAGE = 50
"""Runs on one page of the runs list."""

_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
"""Time filters the runs page offers."""

STATUSES = ("running", "completed", "failed", "stopped")
"""Run statuses the runs page filters by."""


@dataclass(frozen=True)
class RunFilter:
    """The runs page's filters (each optional) and page number."""

    pipeline: str = ""
    status: str = ""
    tag: str = ""
    since: str = ""
    page: int = 1


@dataclass(frozen=True)
class RunRow:
    """One row of the runs page."""

    id: str
    name: str
    pipeline: str
    status: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    stack_name: str
    orchestrator: str
    steps: int
    tags: tuple[str, ...]

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to now while it runs)."""
        return duration(self.started, self.ended, self.status)


@dataclass
class RunsPage:
    """A page of runs and how many match in all."""

    rows: list[RunRow]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class StepState:
    """What the DAG shows of a step run: its status, whether it came from the cache, when it ran.

    A cached step did no work in this run: ``took`` is then how long the step run whose outputs it
    reused took (None when that is unknown).
    """

    step_id: str
    status: str
    cached: bool
    started: datetime | None
    ended: datetime | None
    took: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds it took in this run, or has taken so far (None for a cached step: it did not run)."""
        return None if self.cached else duration(self.started, self.ended, self.status)


@dataclass(frozen=True)
class CachedFrom:
    """The step run a cached step reused: its run, its step and how long it took."""

    run_name: str
    step_id: str
    took: float | None


@dataclass
class RunDetail:
    """A run with its pipeline's name, deployment, its step runs' states (by step id) and one step's whole record."""

    run: RunRecord
    pipeline: str
    deployment: Any
    steps: dict[str, StepState]
    record: StepRunRecord | None = None
    cached_from: CachedFrom | None = None
    outputs: dict[str, dict[str, ArtifactRecord]] = field(default_factory=dict)
    inputs: dict[str, dict[str, ArtifactRecord]] = field(default_factory=dict)


def duration(started: datetime | None, ended: datetime | None, status: str) -> float | None:
    """Seconds a run or step took, or has taken so far while it runs."""
    if started is None:
        return None
    end = ended or (now() if status == RunStatus.RUNNING else None)
    return None if end is None else max(0.0, (aware(end) - aware(started)).total_seconds())


def _tags(extra: Any) -> tuple[str, ...]:
    tags = extra.get("tags") if isinstance(extra, dict) else None
    return tuple(str(x) for x in tags) if isinstance(tags, list) else ()


class Queries:
    """The reads behind every page, over one SQL store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._ir: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    # -- runs ------------------------------------------------------------------------
    def runs(self, f: RunFilter, per_page: int = PER_PAGE) -> RunsPage:
        """One page of runs, newest first, matching the filters (one query)."""
        r, p, sr = t.pipeline_runs, t.pipelines, t.step_runs
        q = sa.select(
            r.c.id,
            r.c.name,
            r.c.status,
            r.c.created,
            r.c.started,
            r.c.ended,
            r.c.stack_name,
            r.c.orchestrator,
            r.c.extra,
            p.c.name.label("pipeline"),
            sa.func.count().over().label("total"),
        ).join(p, p.c.id == r.c.pipeline_id)
        if f.pipeline:
            q = q.where(p.c.name == f.pipeline)
        if f.status:
            q = q.where(r.c.status == f.status)
        if f.tag:
            # Tags live in the run's ``extra`` JSON: match the tag as the store's JSON encoder writes it
            # (quoted, escaped, ASCII only), which works on every database.
            needle = json.dumps(f.tag)
            escaped = needle.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            q = q.where(sa.cast(r.c.extra, sa.Text).like(f"%{escaped}%", escape="!"))
        if f.since in _SINCE:
            q = q.where(r.c.created >= now() - _SINCE[f.since])
        page = max(1, f.page)
        inner = q.order_by(r.c.created.desc(), r.c.id.desc()).limit(per_page).offset((page - 1) * per_page).subquery()
        # Step counts for the page's rows only (the window count already saw every matching run).
        steps = sa.select(sa.func.count()).where(sr.c.run_id == inner.c.id).scalar_subquery()
        outer = sa.select(inner, steps.label("steps")).order_by(inner.c.created.desc(), inner.c.id.desc())
        with self.store.read() as conn:
            found = conn.execute(outer).all()
        total = found[0].total if found else 0
        if not found and page > 1:
            with self.store.read() as conn:
                total = conn.execute(
                    sa.select(sa.func.count()).select_from(q.limit(None).offset(None).subquery())
                ).scalar_one()
        rows = [
            RunRow(
                id=x.id,
                name=x.name,
                pipeline=x.pipeline,
                status=x.status,
                created=aware(x.created),
                started=aware(x.started),
                ended=aware(x.ended),
                stack_name=x.stack_name,
                orchestrator=x.orchestrator,
                steps=x.steps,
                tags=_tags(x.extra),
            )
            for x in found
        ]
        return RunsPage(rows=rows, total=total, page=page, pages=max(1, -(-total // per_page)))

    def pipeline_names(self) -> list[str]:
        """Every pipeline's name, sorted."""
        with self.store.read() as conn:
            return list(conn.execute(sa.select(t.pipelines.c.name).order_by(t.pipelines.c.name)).scalars())

    def deployment(self, deployment_id: str) -> Any:
        """A deployment's IR, parsed once per process (they never change)."""
        with self._lock:
            found = self._ir.get(deployment_id)
            if found is not None:
                self._ir.move_to_end(deployment_id)
                return found
        from conveyor.ir import load_deployment

        found = load_deployment(self.store.get_deployment_json(deployment_id))
        with self._lock:
            self._ir[deployment_id] = found
            while len(self._ir) > 64:
                self._ir.popitem(last=False)
        return found

    def run(self, name_or_id: str, *, artifacts_of: str | None = None) -> RunDetail:
        """A run by id or name, with its step runs, and the artifacts of step ``artifacts_of``.

        Raises:
            NotFoundError: no such run.
        """
        r, p = t.pipeline_runs, t.pipelines
        q = sa.select(r, p.c.name.label("pipeline_name")).join(p, p.c.id == r.c.pipeline_id)
        with self.store.read() as conn:
            row = conn.execute(q.where(r.c.id == name_or_id)).first()
            if row is None:
                row = conn.execute(q.where(r.c.name == name_or_id)).first()
            if row is None:
                raise NotFoundError(f"no run {name_or_id!r}", "see the runs page for the runs this store has")
            run = to_record(RunRecord, row)
            sr = t.step_runs
            # Only what the DAG draws: reading every column of hundreds of rows costs more than the rest of the page.
            # A cached step's own times are the instant it was looked up: the step run it reused says how long it took.
            orig = sr.alias("original")
            step_rows = conn.execute(
                sa.select(
                    sr.c.step_id,
                    sr.c.status,
                    sr.c.cached,
                    sr.c.started,
                    sr.c.ended,
                    orig.c.started.label("orig_started"),
                    orig.c.ended.label("orig_ended"),
                    orig.c.status.label("orig_status"),
                )
                .outerjoin(orig, orig.c.id == sr.c.original_step_run_id)
                .where(sr.c.run_id == run.id)
            ).all()
            record = None
            cached_from = None
            if artifacts_of:
                found = conn.execute(sa.select(sr).where(sr.c.run_id == run.id, sr.c.step_id == artifacts_of)).first()
                record = to_record(StepRunRecord, found) if found is not None else None
            if record is not None and record.cached and record.original_step_run_id:
                source = conn.execute(
                    sa.select(sr.c.step_id, sr.c.started, sr.c.ended, sr.c.status, r.c.name.label("run_name"))
                    .join(r, r.c.id == sr.c.run_id)
                    .where(sr.c.id == record.original_step_run_id)
                ).first()
                if source is not None:
                    took = duration(aware(source.started), aware(source.ended), source.status)
                    cached_from = CachedFrom(source.run_name, source.step_id, took)
            links: list[Any] = []
            if artifacts_of and step_rows:
                av = t.artifact_versions
                for kind, link in (("out", t.step_run_outputs), ("in", t.step_run_inputs)):
                    links += [
                        (kind, x)
                        for x in conn.execute(
                            sa.select(sr.c.step_id, link.c.name.label("link_name"), av)
                            .join(link, link.c.step_run_id == sr.c.id)
                            .join(av, av.c.id == link.c.artifact_id)
                            .where(sr.c.run_id == run.id, sr.c.step_id == artifacts_of)
                        ).all()
                    ]
        steps = {
            x.step_id: StepState(
                x.step_id,
                x.status,
                bool(x.cached),
                aware(x.started),
                aware(x.ended),
                duration(aware(x.orig_started), aware(x.orig_ended), x.orig_status) if x.cached else None,
            )
            for x in step_rows
        }
        detail = RunDetail(
            run=run,
            pipeline=row.pipeline_name,
            deployment=self.deployment(run.deployment_id),
            steps=steps,
            record=record,
            cached_from=cached_from,
        )
        for kind, x in links:
            target = detail.outputs if kind == "out" else detail.inputs
            target.setdefault(x.step_id, {})[x.link_name] = to_record(ArtifactRecord, x)
        return detail

    # -- artifacts ---------------------------------------------------------------------
    def artifact(self, artifact_id: str) -> tuple[ArtifactRecord, Any, list[Any]]:
        """An artifact, the step run that made it (with its run's name) and those that read it.

        Raises:
            NotFoundError: no such artifact.
        """
        av, sr, r = t.artifact_versions, t.step_runs, t.pipeline_runs
        with self.store.read() as conn:
            row = conn.execute(sa.select(av).where(av.c.id == artifact_id)).first()
            if row is None:
                raise NotFoundError(f"no artifact {artifact_id!r}", "artifacts are listed on their runs' pages")
            who = sa.select(sr.c.id, sr.c.step_id, sr.c.status, r.c.id.label("run_id"), r.c.name.label("run_name"))
            who = who.join(r, r.c.id == sr.c.run_id)
            producer = None
            if row.producer_step_run_id:
                producer = conn.execute(who.where(sr.c.id == row.producer_step_run_id)).first()
            consumers = conn.execute(
                who.join(t.step_run_inputs, t.step_run_inputs.c.step_run_id == sr.c.id)
                .add_columns(t.step_run_inputs.c.name.label("input"))
                .where(t.step_run_inputs.c.artifact_id == artifact_id)
                .order_by(r.c.created.desc())
                .limit(200)
            ).all()
        return to_record(ArtifactRecord, row), producer, list(consumers)

    # -- pipelines ----------------------------------------------------------------------
    def pipelines(self) -> list[Any]:
        """Every pipeline with its number of runs and its last run (one query)."""
        p, r = t.pipelines, t.pipeline_runs
        last = (
            sa.select(r.c.pipeline_id, sa.func.count().label("runs"), sa.func.max(r.c.created).label("last"))
            .group_by(r.c.pipeline_id)
            .subquery()
        )
        last_run = r.alias("last_run")
        q = (
            sa.select(
                p.c.id,
                p.c.name,
                p.c.created,
                sa.func.coalesce(last.c.runs, 0).label("runs"),
                last_run.c.name.label("last_run"),
                last_run.c.status.label("last_status"),
                last_run.c.created.label("last_created"),
            )
            .outerjoin(last, last.c.pipeline_id == p.c.id)
            .outerjoin(last_run, sa.and_(last_run.c.pipeline_id == p.c.id, last_run.c.created == last.c.last))
            .order_by(p.c.name)
        )
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        seen: dict[str, Any] = {}
        for x in rows:
            seen.setdefault(x.id, x)  # two runs made in the same instant: one row is enough
        return list(seen.values())

    def pipeline(self, name: str) -> tuple[Any, Any]:
        """A pipeline and the IR of its latest deployment (None before its first).

        Raises:
            NotFoundError: no such pipeline.
        """
        record = self.store.get_pipeline(name)
        deployment_id = self.store.latest_deployment_id(record.id)
        return record, (self.deployment(deployment_id) if deployment_id else None)
