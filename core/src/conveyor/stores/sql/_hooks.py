"""Hook invocations in the SQL store: claimed once per run, then finished with their outcome."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.stores._records import HookInvocationRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, aware

_HOOKS = t.hook_invocations


def _record(row: sa.Row[Any]) -> HookInvocationRecord:
    data = row._mapping
    return HookInvocationRecord(
        id=data["id"],
        run_id=data["run_id"],
        pipeline_name=data["pipeline_name"],
        step_id=data["step_id"] or None,
        event=data["event"],
        position=data["position"],
        hook=data["hook"],
        status=data["status"],
        started=aware(data["started"]),
        ended=aware(data["ended"]),
        error=data["error"],
    )


class HookTables(SqlDatabase):
    """Hook invocations: a unique claim per (run, step, event, position), then the outcome."""

    def claim_hook_invocation(
        self, pipeline_name: str, run_id: str | None, step_id: str | None, event: str, position: int, hook: str
    ) -> str | None:
        """Record that a hook is about to run; None when another process claimed it first."""
        invocation_id = new_id()
        values = {
            "id": invocation_id,
            "run_id": run_id,
            "pipeline_name": pipeline_name,
            "step_id": step_id or "",
            "event": event,
            "position": position,
            "hook": hook,
            "status": "running",
            "started": now(),
        }
        try:
            with self.write() as conn:
                conn.execute(_HOOKS.insert().values(**values))
        except IntegrityError:
            return None  # the unique claim: whoever inserted first runs the hook
        return invocation_id

    def finish_hook_invocation(self, invocation_id: str, status: str, error: str | None = None) -> None:
        """Record how a claimed hook ended."""
        with self.write() as conn:
            conn.execute(
                _HOOKS.update().where(_HOOKS.c.id == invocation_id).values(status=status, ended=now(), error=error)
            )

    def list_hook_invocations(
        self, run_id: str | None, *, pipeline_name: str | None = None
    ) -> list[HookInvocationRecord]:
        """A run's hook invocations (or a pipeline's that had no run), in the order they started."""
        stmt = sa.select(_HOOKS).order_by(_HOOKS.c.started, _HOOKS.c.id)
        if run_id is not None:
            stmt = stmt.where(_HOOKS.c.run_id == run_id)
        else:
            stmt = stmt.where(_HOOKS.c.run_id.is_(None), _HOOKS.c.pipeline_name == (pipeline_name or ""))
        with self.read() as conn:
            return [_record(r) for r in conn.execute(stmt).all()]
