"""Models, their numbered versions, aliases with their history, and links to runs in the SQL store.

A new version takes its number from its model's row: the transaction first
increments ``models.latest_version``, which locks that row, so creators of
one model queue there (SQLite serializes every writer anyway). Numbers are
thus given once each, and a transaction that rolls back gives its number back.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import ConfigError, NotFoundError, StoreError
from conveyor.ir import (
    LATEST,
    NAME_RULE,
    name_problem,
    normalize_version,
    shown,
    version_name_problem,
    version_reference_problem,
)
from conveyor.stores._records import (
    ArtifactRecord,
    ModelAliasEventRecord,
    ModelLinkRole,
    ModelRecord,
    ModelVersionLinkRecord,
    ModelVersionRecord,
    new_id,
    now,
)
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, aware, to_record

_M = t.models
_MV = t.model_versions
_MA = t.model_aliases
_ME = t.model_alias_events
_ML = t.model_version_links
_AV = t.artifact_versions
_ATTEMPTS = 8
_ID = re.compile(r"[0-9a-f]{32}")
_MAX_MOVED_BY = 255
_MAX_KEY = 255


class _Existing(Exception):
    """Raised inside a write transaction to roll it back and hand out a version found there."""

    def __init__(self, record: ModelVersionRecord) -> None:
        super().__init__(record.id)
        self.record = record


def _is_number(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _check_model_name(name: object) -> str:
    problem = name_problem(name)
    if problem is not None:
        subject = shown(name) if isinstance(name, str) else repr(type(name))
        raise ConfigError(f"model name {subject} {problem}", NAME_RULE)
    assert isinstance(name, str)
    return name


def _check_reference(version: object) -> str:
    problem = version_reference_problem(version)
    if problem is not None:
        subject = shown(version) if isinstance(version, str) else repr(type(version))
        raise ConfigError(f"model version {subject} {problem}", "give a number, 'latest', an alias or a version name")
    assert isinstance(version, str)
    return normalize_version(version)


def _closest(wanted: str, names: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(wanted, sorted(set(names)), n=3, cutoff=0.6)


def _listing(label: str, names: Sequence[str], limit: int = 10) -> str:
    shown_names = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return f"{label}: {shown_names}"


def _fields(model_fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model fields a new version records: only those the caller gave a value for."""
    out: dict[str, Any] = {}
    for key in ("description", "license"):
        value = (model_fields or {}).get(key)
        if value is not None:
            out[key] = str(value)
    tags = (model_fields or {}).get("tags")
    if tags:
        out["tags"] = [str(tag) for tag in tags]
    return out


class ModelTables(SqlDatabase):
    """Models, model versions, aliases and their moves, and what is linked to versions."""

    # -- reading helpers ---------------------------------------------------------------
    def _model_row(self, conn: sa.Connection, name_or_id: str) -> Any:
        return conn.execute(sa.select(_M).where(sa.or_(_M.c.name == name_or_id, _M.c.id == name_or_id))).first()

    def _require_model(self, conn: sa.Connection, name_or_id: str) -> Any:
        row = self._model_row(conn, name_or_id)
        if row is not None:
            return row
        names = list(conn.execute(sa.select(_M.c.name).order_by(_M.c.name)).scalars())
        close = _closest(name_or_id, names)
        if close:
            hint = f"did you mean {close[0]!r}? " + _listing("models", names)
        elif names:
            hint = _listing("models", names)
        else:
            hint = "no model exists yet: a run of @pipeline(model=Model(name=...)) creates one"
        raise NotFoundError(f"no model {name_or_id!r}", hint)

    def _version_records(self, conn: sa.Connection, rows: Sequence[Any], model_name: str) -> list[ModelVersionRecord]:
        ids = [r.id for r in rows]
        aliases: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for alias_row in conn.execute(
                sa.select(_MA.c.alias, _MA.c.model_version_id).where(_MA.c.model_version_id.in_(ids))
            ):
                aliases[alias_row.model_version_id].append(alias_row.alias)
        return [
            ModelVersionRecord(
                id=r.id,
                model_id=r.model_id,
                model_name=model_name,
                number=r.number,
                name=r.name,
                run_id=r.run_id,
                created=aware(r.created),
                aliases=sorted(aliases[r.id]),
            )
            for r in rows
        ]

    def _resolve(self, conn: sa.Connection, model_id: str, version: str) -> Any:
        """The version row a reference names within one model: number, latest, alias, name or id."""
        base = sa.select(_MV).where(_MV.c.model_id == model_id)
        if _is_number(version):
            return conn.execute(base.where(_MV.c.number == int(version))).first()
        if version == LATEST:
            return conn.execute(base.order_by(_MV.c.number.desc()).limit(1)).first()
        aliased = conn.execute(
            sa.select(_MV)
            .join(_MA, _MA.c.model_version_id == _MV.c.id)
            .where(_MA.c.model_id == model_id, _MA.c.alias == version)
        ).first()
        if aliased is not None:
            return aliased
        named = conn.execute(base.where(_MV.c.name == version)).first()
        if named is not None or not _ID.fullmatch(version):
            return named
        return conn.execute(base.where(_MV.c.id == version)).first()

    def _missing_version(self, conn: sa.Connection, model: Any, version: str) -> NotFoundError:
        if version == LATEST or not model.latest_version:
            return NotFoundError(
                f"model {model.name!r} has no versions yet", "a run of a pipeline with this model creates one"
            )
        if _is_number(version):
            return NotFoundError(
                f"model {model.name!r} has no version {version}",
                f"its versions are 1 to {model.latest_version}"
                if model.latest_version > 1
                else "its only version is 1",
            )
        aliases = list(
            conn.execute(sa.select(_MA.c.alias).where(_MA.c.model_id == model.id).order_by(_MA.c.alias)).scalars()
        )
        names = list(
            conn.execute(
                sa.select(_MV.c.name).where(_MV.c.model_id == model.id, _MV.c.name.is_not(None)).order_by(_MV.c.number)
            ).scalars()
        )
        close = _closest(version, [*aliases, *names])
        parts = []
        if aliases:
            parts.append(_listing("aliases", aliases))
        if names:
            parts.append(_listing("named versions", names))
        parts.append(f"numbers 1 to {model.latest_version}" if model.latest_version > 1 else "number 1")
        hint = (f"did you mean {close[0]!r}? " if close else "") + "; ".join(parts)
        return NotFoundError(f"model {model.name!r} has no version or alias {version!r}", hint)

    # -- versions ----------------------------------------------------------------------
    def get_or_create_model_version(
        self,
        model: str,
        *,
        version: str | None = None,
        key: str | None = None,
        run_id: str | None = None,
        model_fields: Mapping[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """The model version a run works in, created when missing; see :meth:`MetadataStore.get_or_create_model_version`."""
        _check_model_name(model)
        if version is not None:
            version = _check_reference(version)
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY):
            raise ConfigError(f"a model version's creation key is 1 to {_MAX_KEY} characters, not {shown(key)}")
        with self.read() as conn:
            found = self._model_row(conn, model)
            if found is not None:
                existing = self._existing(conn, found.id, version, key)
                if existing is not None:
                    return self._version_records(conn, [existing], found.name)[0]
                if version is not None and (_is_number(version) or version == LATEST):
                    raise self._missing_version(conn, found, version)
            elif version is not None and (_is_number(version) or version == LATEST):
                raise NotFoundError(
                    f"no model {model!r} to take version {version} of", "a run of a pipeline with this model creates it"
                )
        if version is not None:
            problem = version_name_problem(version)
            if problem is not None:  # a name made only of digits of another script
                raise ConfigError(f"model version name {shown(version)} {problem}")
        for attempt in range(_ATTEMPTS):
            try:
                with self.write() as conn:
                    return self._create_version(conn, model, version, key, run_id, _fields(model_fields))
            except _Existing as exc:
                return exc.record
            except IntegrityError:
                # Another process created the model, or the named version, first: look again.
                time.sleep(0.02 * (attempt + 1))
        raise StoreError(f"cannot create a version of model {model!r}: too many concurrent writers", "try again")

    def _existing(self, conn: sa.Connection, model_id: str, version: str | None, key: str | None) -> Any:
        if version is not None:
            return self._resolve(conn, model_id, version)
        if key is None:
            return None
        return conn.execute(sa.select(_MV).where(_MV.c.model_id == model_id, _MV.c.creation_key == key)).first()

    def _create_version(
        self,
        conn: sa.Connection,
        model: str,
        version: str | None,
        key: str | None,
        run_id: str | None,
        fields: dict[str, Any],
    ) -> ModelVersionRecord:
        stamp = now()
        row = conn.execute(sa.select(_M.c.id).where(_M.c.name == model)).first()
        if row is None:
            model_id = new_id()
            conn.execute(
                _M.insert().values(
                    id=model_id,
                    name=model,
                    description=fields.get("description"),
                    tags=fields.get("tags", []),
                    license=fields.get("license"),
                    latest_version=0,
                    created=stamp,
                    updated=stamp,
                )
            )
        else:
            model_id = row.id
        # Take the model's row: every creator of a version of this model waits here for the one before it.
        conn.execute(
            _M.update()
            .where(_M.c.id == model_id)
            .values(latest_version=_M.c.latest_version + 1, updated=stamp, **fields)
        )
        existing = self._existing(conn, model_id, version, key)
        if existing is not None:
            raise _Existing(self._version_records(conn, [existing], model)[0])
        number = conn.execute(sa.select(_M.c.latest_version).where(_M.c.id == model_id)).scalar_one()
        version_id = new_id()
        conn.execute(
            _MV.insert().values(
                id=version_id,
                model_id=model_id,
                number=number,
                name=version,
                run_id=run_id,
                creation_key=key,
                created=stamp,
            )
        )
        return ModelVersionRecord(
            id=version_id,
            model_id=model_id,
            model_name=model,
            number=number,
            name=version,
            run_id=run_id,
            created=stamp,
            aliases=[],
        )

    def get_model(self, name_or_id: str) -> ModelRecord:
        """A model by name or id."""
        _check_model_name(name_or_id)
        with self.read() as conn:
            return to_record(ModelRecord, self._require_model(conn, name_or_id))

    def list_models(self) -> list[ModelRecord]:
        """Every model, by name."""
        with self.read() as conn:
            return [to_record(ModelRecord, r) for r in conn.execute(sa.select(_M).order_by(_M.c.name))]

    def get_model_version(self, model: str, version: str) -> ModelVersionRecord:
        """A version of a model by number, ``latest``, alias, name or id."""
        _check_model_name(model)
        version = _check_reference(version)
        with self.read() as conn:
            model_row = self._require_model(conn, model)
            row = self._resolve(conn, model_row.id, version)
            if row is None and _ID.fullmatch(version):
                other = conn.execute(
                    sa.select(_MV.c.number, _M.c.name).join(_M, _M.c.id == _MV.c.model_id).where(_MV.c.id == version)
                ).first()
                if other is not None:
                    raise ConfigError(
                        f"model version {version} is version {other.number} of model {other.name!r}, "
                        f"not a version of {model_row.name!r}",
                        "aliases and references are per model: name a version of this model",
                    )
            if row is None:
                raise self._missing_version(conn, model_row, version)
            return self._version_records(conn, [row], model_row.name)[0]

    def list_model_versions(self, model: str) -> list[ModelVersionRecord]:
        """The versions of a model, by number."""
        _check_model_name(model)
        with self.read() as conn:
            model_row = self._require_model(conn, model)
            rows = conn.execute(sa.select(_MV).where(_MV.c.model_id == model_row.id).order_by(_MV.c.number)).all()
            return self._version_records(conn, rows, model_row.name)

    # -- aliases -----------------------------------------------------------------------
    def set_model_alias(
        self, model: str, alias: str, version_id: str | None, *, moved_by: str
    ) -> ModelAliasEventRecord | None:
        """Point an alias at a version (None removes it) and record the move."""
        _check_model_name(model)
        if version_id is not None:
            problem = version_name_problem(alias)
            if problem is not None:
                subject = shown(alias) if isinstance(alias, str) else repr(type(alias))
                raise ConfigError(f"alias {subject} {problem}", NAME_RULE)
        moved_by = (moved_by or "unknown")[:_MAX_MOVED_BY]
        for attempt in range(_ATTEMPTS):
            try:
                with self.write() as conn:
                    return self._move_alias(conn, model, alias, version_id, moved_by)
            except IntegrityError:
                time.sleep(0.02 * (attempt + 1))
        raise StoreError(f"cannot move alias {alias!r} of model {model!r}: too many concurrent writers", "try again")

    def _move_alias(
        self, conn: sa.Connection, model: str, alias: str, version_id: str | None, moved_by: str
    ) -> ModelAliasEventRecord | None:
        model_row = self._require_model(conn, model)
        stamp = now()
        # Take the model's row: moves of its aliases happen one after another, so each records what it replaced.
        conn.execute(_M.update().where(_M.c.id == model_row.id).values(updated=stamp))
        target = None
        if version_id is not None:
            target = conn.execute(sa.select(_MV).where(_MV.c.id == version_id)).first()
            if target is None:
                raise NotFoundError(f"no model version {version_id!r}", f"see `conveyor model version list {model}`")
            if target.model_id != model_row.id:
                owner = conn.execute(sa.select(_M.c.name).where(_M.c.id == target.model_id)).scalar_one()
                raise ConfigError(
                    f"cannot point alias {alias!r} of model {model_row.name!r} at version {target.number} of "
                    f"model {owner!r}",
                    "an alias names a version of its own model",
                )
            named = conn.execute(
                sa.select(_MV.c.number).where(
                    _MV.c.model_id == model_row.id, _MV.c.name == alias, _MV.c.id != version_id
                )
            ).first()
            if named is not None:
                raise ConfigError(
                    f"alias {alias!r} is the name of version {named.number} of model {model_row.name!r}",
                    "choose an alias that no version is named",
                )
        current = conn.execute(
            sa.select(_MA.c.model_version_id).where(_MA.c.model_id == model_row.id, _MA.c.alias == alias)
        ).first()
        before = current.model_version_id if current is not None else None
        if before == version_id:
            if version_id is None:
                aliases = list(
                    conn.execute(
                        sa.select(_MA.c.alias).where(_MA.c.model_id == model_row.id).order_by(_MA.c.alias)
                    ).scalars()
                )
                close = _closest(alias, aliases)
                hint = (f"did you mean {close[0]!r}? " if close else "") + (
                    _listing("aliases", aliases) if aliases else "it has no aliases"
                )
                raise NotFoundError(f"model {model_row.name!r} has no alias {alias!r}", hint)
            return None
        where = sa.and_(_MA.c.model_id == model_row.id, _MA.c.alias == alias)
        if version_id is None:
            conn.execute(_MA.delete().where(where))
        elif current is None:
            conn.execute(
                _MA.insert().values(model_id=model_row.id, alias=alias, model_version_id=version_id, updated=stamp)
            )
        else:
            conn.execute(_MA.update().where(where).values(model_version_id=version_id, updated=stamp))
        seq = conn.execute(sa.select(sa.func.max(_ME.c.seq)).where(_ME.c.model_id == model_row.id)).scalar()
        conn.execute(
            _ME.insert().values(
                id=new_id(),
                model_id=model_row.id,
                seq=(seq or 0) + 1,
                alias=alias,
                from_version_id=before,
                to_version_id=version_id,
                moved_by=moved_by,
                created=stamp,
            )
        )
        numbers = dict(
            conn.execute(
                sa.select(_MV.c.id, _MV.c.number).where(_MV.c.id.in_([i for i in (before, version_id) if i]))
            ).all()
        )
        return ModelAliasEventRecord(
            model_name=model_row.name,
            alias=alias,
            from_version=numbers.get(before) if before else None,
            to_version=numbers.get(version_id) if version_id else None,
            moved_by=moved_by,
            created=stamp,
        )

    def list_model_alias_events(self, model: str, alias: str | None = None) -> list[ModelAliasEventRecord]:
        """The moves of a model's aliases, oldest first."""
        _check_model_name(model)
        before = _MV.alias("before_version")
        after = _MV.alias("after_version")
        with self.read() as conn:
            model_row = self._require_model(conn, model)
            stmt = (
                sa.select(
                    _ME.c.alias,
                    _ME.c.moved_by,
                    _ME.c.created,
                    before.c.number.label("from_version"),
                    after.c.number.label("to_version"),
                )
                .select_from(
                    _ME.outerjoin(before, before.c.id == _ME.c.from_version_id).outerjoin(
                        after, after.c.id == _ME.c.to_version_id
                    )
                )
                .where(_ME.c.model_id == model_row.id)
                .order_by(_ME.c.seq)
            )
            if alias is not None:
                stmt = stmt.where(_ME.c.alias == alias)
            rows = conn.execute(stmt).all()
        return [
            ModelAliasEventRecord(
                model_name=model_row.name,
                alias=r.alias,
                from_version=r.from_version,
                to_version=r.to_version,
                moved_by=r.moved_by,
                created=aware(r.created),
            )
            for r in rows
        ]

    # -- links -------------------------------------------------------------------------
    def link_model_version(
        self,
        version_id: str,
        *,
        run_id: str,
        step_run_id: str,
        role: str,
        artifacts: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Link a step run, its artifacts and what it logged to a model version."""
        if role not in (ModelLinkRole.PRODUCED, ModelLinkRole.CONSUMED):
            raise ConfigError(
                f"a model version link's role is {ModelLinkRole.PRODUCED!r} or {ModelLinkRole.CONSUMED!r}, "
                f"not {shown(role) if isinstance(role, str) else type(role).__name__}"
            )
        stamp = now()
        common = {"model_version_id": version_id, "run_id": run_id, "step_run_id": step_run_id, "role": role}
        rows = [{**common, "id": new_id(), "artifact_id": None, "name": None, "metadata": dict(metadata or {})}]
        rows += [
            {**common, "id": new_id(), "artifact_id": artifact_id, "name": name, "metadata": {}}
            for name, artifact_id in sorted((artifacts or {}).items())
        ]
        with self.write() as conn:
            # A retried step links again: its earlier attempt's links make way. They are deleted by
            # id, and only when there are some: a DELETE over an empty range of an index takes a gap
            # lock on MySQL, and two such steps inserting into the gap then deadlock.
            earlier = list(
                conn.execute(
                    sa.select(_ML.c.id).where(
                        _ML.c.model_version_id == version_id, _ML.c.step_run_id == step_run_id, _ML.c.role == role
                    )
                ).scalars()
            )
            if earlier:
                conn.execute(_ML.delete().where(_ML.c.id.in_(earlier)))
            conn.execute(_ML.insert(), [{**r, "created": stamp} for r in rows])

    def list_model_version_links(
        self, *, version_id: str | None = None, run_id: str | None = None
    ) -> list[ModelVersionLinkRecord]:
        """Links of a model version, or of a run, oldest first."""
        stmt = (
            sa.select(_ML, _MV.c.number.label("version_number"), _M.c.name.label("model_name"))
            .join(_MV, _MV.c.id == _ML.c.model_version_id)
            .join(_M, _M.c.id == _MV.c.model_id)
            .order_by(_ML.c.created, _ML.c.step_run_id, _ML.c.name)
        )
        if version_id is not None:
            stmt = stmt.where(_ML.c.model_version_id == version_id)
        if run_id is not None:
            stmt = stmt.where(_ML.c.run_id == run_id)
        with self.read() as conn:
            return [to_record(ModelVersionLinkRecord, r) for r in conn.execute(stmt).all()]

    def model_version_artifacts(self, version_id: str) -> dict[str, ArtifactRecord]:
        """``{artifact name: artifact}`` the version's steps produced (the newest of each name)."""
        stmt = (
            sa.select(_ML.c.name.label("link_name"), _AV)
            .join(_AV, _AV.c.id == _ML.c.artifact_id)
            .where(_ML.c.model_version_id == version_id, _ML.c.role == ModelLinkRole.PRODUCED)
            .order_by(_ML.c.created, _AV.c.created, _AV.c.version)
        )
        with self.read() as conn:
            return {r.link_name: to_record(ArtifactRecord, r) for r in conn.execute(stmt).all()}
