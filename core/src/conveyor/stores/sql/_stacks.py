"""Stack components and stacks in the SQL store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores._records import ComponentRecord, StackRecord, new_id, now
from conveyor.stores.sql import _schema as t
from conveyor.stores.sql._engine import SqlDatabase, aware, to_record


class StackTables(SqlDatabase):
    """Registered stack components and the stacks made of them."""

    def create_component(
        self, type_: str, flavor: str, name: str, config: Mapping[str, Any], *, install: str | None = None
    ) -> ComponentRecord:
        """Register a stack component."""
        stamp = now()
        try:
            with self.write() as conn:
                cid = new_id()
                conn.execute(
                    t.stack_components.insert().values(
                        id=cid,
                        type=type_,
                        flavor=flavor,
                        name=name,
                        config=dict(config),
                        created=stamp,
                        updated=stamp,
                        install=install,
                    )
                )
        except IntegrityError:
            raise StoreError(
                f"a {type_.replace('_', '-')} named {name!r} already exists",
                f"pick another name or `conveyor {type_.replace('_', '-')} update {name}`",
            ) from None
        return self.get_component(type_, name)

    def get_component(self, type_: str, name: str) -> ComponentRecord:
        """A stack component by type and name."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(t.stack_components).where(
                    t.stack_components.c.type == type_, t.stack_components.c.name == name
                )
            ).first()
        if row is None:
            kind = type_.replace("_", "-")
            raise NotFoundError(f"no {kind} named {name!r}", f"see `conveyor {kind} list`")
        return to_record(ComponentRecord, row)

    def list_components(self, type_: str | None = None) -> list[ComponentRecord]:
        """Registered components, by type and name."""
        stmt = sa.select(t.stack_components).order_by(t.stack_components.c.type, t.stack_components.c.name)
        if type_ is not None:
            stmt = stmt.where(t.stack_components.c.type == type_)
        with self.read() as conn:
            return [to_record(ComponentRecord, r) for r in conn.execute(stmt).all()]

    def update_component(self, type_: str, name: str, config: Mapping[str, Any]) -> ComponentRecord:
        """Replace a component's config."""
        record = self.get_component(type_, name)
        with self.write() as conn:
            conn.execute(
                t.stack_components.update()
                .where(t.stack_components.c.id == record.id)
                .values(config=dict(config), updated=now())
            )
        return self.get_component(type_, name)

    def delete_component(self, type_: str, name: str) -> None:
        """Delete a component that no stack uses."""
        record = self.get_component(type_, name)
        with self.write() as conn:
            users = (
                conn.execute(
                    sa.select(t.stacks.c.name)
                    .join(t.stack_members, t.stack_members.c.stack_id == t.stacks.c.id)
                    .where(t.stack_members.c.component_id == record.id)
                )
                .scalars()
                .all()
            )
            if users:
                raise StoreError(
                    f"{type_.replace('_', '-')} {name!r} is used by stack {sorted(users)[0]!r}",
                    "remove it from that stack first",
                )
            conn.execute(t.stack_components.delete().where(t.stack_components.c.id == record.id))

    def save_stack(self, name: str, component_ids: Mapping[str, str], *, create: bool) -> StackRecord:
        """Create a stack, or replace the members of an existing one."""
        stamp = now()
        try:
            with self.write() as conn:
                row = conn.execute(sa.select(t.stacks.c.id).where(t.stacks.c.name == name)).first()
                if create:
                    if row is not None:
                        raise StoreError(
                            f"a stack named {name!r} already exists", f"use `conveyor stack update {name}`"
                        )
                    sid = new_id()
                    conn.execute(t.stacks.insert().values(id=sid, name=name, created=stamp, updated=stamp))
                else:
                    if row is None:
                        raise NotFoundError(f"no stack named {name!r}", "see `conveyor stack list`")
                    sid = row.id
                    conn.execute(t.stacks.update().where(t.stacks.c.id == sid).values(updated=stamp))
                    conn.execute(t.stack_members.delete().where(t.stack_members.c.stack_id == sid))
                conn.execute(
                    t.stack_members.insert(),
                    [{"stack_id": sid, "component_type": k, "component_id": v} for k, v in component_ids.items()],
                )
        except IntegrityError:
            raise StoreError(f"a stack named {name!r} already exists", f"use `conveyor stack update {name}`") from None
        return self.get_stack(name)

    def ensure_stack(self, name: str, components: Mapping[str, tuple[str, str, dict[str, Any]]]) -> None:
        """Create a stack and its missing components in one transaction, unless the stack exists.

        ``components`` maps a component type to ``(name, flavor, config)``.
        """
        query = sa.select(t.stacks.c.id).where(t.stacks.c.name == name)
        with self.read() as conn:
            if conn.execute(query).first() is not None:
                return  # the common case: no write lock taken
        try:
            self._create_stack(name, components, query)
        except IntegrityError:
            self._create_stack(name, components, query)  # a concurrent creator on a server database won the race

    def _create_stack(
        self, name: str, components: Mapping[str, tuple[str, str, dict[str, Any]]], query: sa.Select[Any]
    ) -> None:
        stamp = now()
        with self.write() as conn:
            if conn.execute(query).first() is not None:
                return
            members = {}
            for ctype, (cname, flavor, config) in components.items():
                cid = conn.execute(
                    sa.select(t.stack_components.c.id).where(
                        t.stack_components.c.type == ctype, t.stack_components.c.name == cname
                    )
                ).scalar()
                if cid is None:
                    cid = new_id()
                    conn.execute(
                        t.stack_components.insert().values(
                            id=cid, type=ctype, flavor=flavor, name=cname, config=config, created=stamp, updated=stamp
                        )
                    )
                members[ctype] = cid
            sid = new_id()
            conn.execute(t.stacks.insert().values(id=sid, name=name, created=stamp, updated=stamp))
            conn.execute(
                t.stack_members.insert(),
                [{"stack_id": sid, "component_type": k, "component_id": v} for k, v in members.items()],
            )

    def get_stack(self, name: str) -> StackRecord:
        """A stack with its components."""
        with self.read() as conn:
            row = conn.execute(sa.select(t.stacks).where(t.stacks.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no stack named {name!r}", "see `conveyor stack list`")
            members = conn.execute(
                sa.select(t.stack_members.c.component_type, t.stack_components)
                .join(t.stack_components, t.stack_components.c.id == t.stack_members.c.component_id)
                .where(t.stack_members.c.stack_id == row.id)
            ).all()
        components = {m.component_type: to_record(ComponentRecord, m) for m in members}
        return StackRecord(
            id=row.id, name=row.name, components=components, created=aware(row.created), updated=aware(row.updated)
        )

    def list_stacks(self) -> list[StackRecord]:
        """Every stack with its components, by name."""
        with self.read() as conn:
            names = conn.execute(sa.select(t.stacks.c.name).order_by(t.stacks.c.name)).scalars().all()
        return [self.get_stack(n) for n in names]

    def delete_stack(self, name: str) -> None:
        """Delete a stack (its components stay)."""
        record = self.get_stack(name)
        with self.write() as conn:
            conn.execute(t.stack_members.delete().where(t.stack_members.c.stack_id == record.id))
            conn.execute(t.stacks.delete().where(t.stacks.c.id == record.id))
