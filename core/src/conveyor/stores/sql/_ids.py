"""Finding records by a unique prefix of their id, the one rule every kind of record follows."""

from __future__ import annotations

import re

import sqlalchemy as sa

from conveyor.exceptions import AmbiguousIdError, NotFoundError, StoreError
from conveyor.stores._interface import ID_KINDS, MIN_ID_PREFIX
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase

_TABLES = {"run": t.pipeline_runs, "artifact": t.artifact_versions, "step_run": t.step_runs}
_HEX = re.compile(r"[0-9a-f]{1,32}")
_SHOWN = 3


class IdTables(SqlDatabase):
    """Id prefixes: ``resolve_id`` for every kind of record with a random id."""

    def resolve_id(self, kind: str, ref: str) -> str:
        """The full id of the record of ``kind`` whose id is ``ref`` or starts with it; see the interface."""
        table = _TABLES.get(kind)
        if table is None:
            raise StoreError(f"records of kind {kind!r} have no ids to look up", f"kinds are: {', '.join(ID_KINDS)}")
        what, hint = ID_KINDS[kind]
        text = ref.strip().lower() if isinstance(ref, str) else ""
        if not _HEX.fullmatch(text):
            raise NotFoundError(f"no {what} {ref!r}", hint)
        if len(text) < MIN_ID_PREFIX:
            raise NotFoundError(f"no {what} {ref!r}", f"give at least {MIN_ID_PREFIX} characters of an id")
        # Ids are lowercase hex: every id that starts with the prefix sorts between it and the prefix
        # followed by "g", which every backend answers from the primary key's index.
        stmt = (
            sa.select(table.c.id)
            .where(table.c.id >= text, table.c.id < text + "g")
            .order_by(table.c.id)
            .limit(_SHOWN + 1)
        )
        with self.read() as conn:
            found = [str(r) for r in conn.execute(stmt).scalars()]
        if not found:
            raise NotFoundError(f"no {what} {ref!r}", hint)
        if len(found) > 1:
            shown = ", ".join(i[: len(text) + 4] for i in found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
            raise AmbiguousIdError(f"the id prefix {ref!r} fits more than one {what} ({shown})", "give more of the id")
        return found[0]
