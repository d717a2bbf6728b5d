"""Records on the wire: the JSON the server sends and the REST store reads back.

Both sides use these two functions, so a record survives the round trip
exactly (timestamps as ISO 8601 in UTC).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from conveyor.stores._records import ComponentRecord, RunRecord, StackRecord

R = TypeVar("R")

_TIMES = frozenset({"created", "started", "ended", "updated", "removed"})


def dump(value: Any) -> Any:
    """Plain JSON data for a record, a list or dict of records, or a timestamp."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    return value


def when(value: Any) -> datetime | None:
    """A timestamp from its ISO 8601 text (UTC when it names no zone)."""
    if value is None:
        return None
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def load(cls: type[R], data: dict[str, Any]) -> R:
    """A record of ``cls`` from the JSON :func:`dump` made."""
    if cls is StackRecord:
        return StackRecord(  # type: ignore[return-value]
            id=data["id"],
            name=data["name"],
            components={k: load(ComponentRecord, v) for k, v in data["components"].items()},
            created=when(data["created"]),  # type: ignore[arg-type]
            updated=when(data["updated"]),  # type: ignore[arg-type]
        )
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            raw = data[f.name]
            values[f.name] = when(raw) if f.name in _TIMES else raw
    tags = values.get("tags")
    if cls is RunRecord and isinstance(tags, list):
        values["tags"] = tuple(tags)
    return cls(**values)


def dump_values(values: dict[str, Any]) -> dict[str, Any]:
    """Keyword values of a store call as JSON (timestamps as text)."""
    return {k: dump(v) for k, v in values.items()}
