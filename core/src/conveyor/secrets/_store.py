"""The secrets store: encrypted secrets in the metadata store's ``secrets`` table.

Each row holds the secret's name, owner, schema and key names in the clear,
and its values only as a Fernet token (see :mod:`conveyor.secrets._keys`).
The token's plain text also names the secret and its owner, so a token
copied onto another row does not decrypt as that row's secret.

Scoping: every secret has an *owner*, the id of the repository (or person)
that created it: ``CONVEYOR_SECRETS_OWNER``, else the id in the
repository's ``.conveyor/secrets.owner``, made (``<user>-<random>``) when the
repository stores its first secret. Owners see and resolve their own
secrets and the secrets others marked *shared*; only the owner changes or
deletes a secret. A name resolves to the owner's own secret first, then to the shared secret
of that name (one per name). Reading a shared secret also needs the key it
was encrypted with: teams that share secrets share a key through
``CONVEYOR_SECRETS_KEY``.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import SecretError
from conveyor.secrets._keys import (
    ENV_SECRETS_KEY,
    ENV_SECRETS_KEY_FILE,
    KeyRing,
    generate_key,
    install_pending_key,
    key_id,
    load_keyring,
    pending_path,
    read_key_file,
    repository_folder,
    write_private_file,
)
from conveyor.secrets._redact import mask_values
from conveyor.secrets._schemas import check_name, validate_values

if TYPE_CHECKING:
    import sqlalchemy as sa

    from conveyor.stores.sql import SqlDatabase

ENV_SECRETS_OWNER = "CONVEYOR_SECRETS_OWNER"
"""Whose secrets this process sees; overrides the id in the repository's ``.conveyor/secrets.owner``."""

OWNER_FILE = "secrets.owner"
"""Name of the file in ``.conveyor/`` that holds the repository's owner id."""

_FORMAT = 1


def current_owner(*, create: bool = False, folder: Path | None = None) -> str | None:
    """The owner id of this process: ``CONVEYOR_SECRETS_OWNER``, else the repository's.

    Args:
        create: give the repository an owner id when it has none yet.
        folder: the repository's ``.conveyor/`` folder (default: the working folder's repository).

    Raises:
        SecretError: ``create`` is set but there is neither variable nor repository.
    """
    env = os.environ.get(ENV_SECRETS_OWNER)
    if env and env.strip():
        return env.strip()
    if folder is None:
        folder = repository_folder()
    if folder is None:
        if create:
            raise SecretError(
                "cannot tell who owns new secrets: not inside a conveyor repository",
                f"set {ENV_SECRETS_OWNER} or run inside a repository",
            )
        return None
    path = folder / OWNER_FILE
    for _ in range(2):
        try:
            owner = path.read_text("utf-8").strip()
        except FileNotFoundError:
            owner = ""
        if owner or not create:
            return owner or None
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "user"
        # Exclusive: two processes storing their first secret at once agree on one id.
        write_private_file(path, f"{user}-{uuid.uuid4().hex[:12]}", exclusive=True)
    raise SecretError(f"cannot record the secrets owner in {path}")


def process_environment(folder: Path | None = None) -> dict[str, str]:
    """Variables that let a step process on this machine find this process's secrets.

    A step process may start in another folder (its source root) where the
    repository is not found by searching upwards; these name the key file and
    the owner id explicitly. Neither is a secret value. Empty when there is
    nothing to pass on (the key or owner come from the environment already).
    """
    from conveyor.secrets._keys import ENV_SECRETS_KEY, key_file_path

    out: dict[str, str] = {}
    if folder is None:
        folder = repository_folder()
    if not os.environ.get(ENV_SECRETS_KEY) and not os.environ.get(ENV_SECRETS_KEY_FILE):
        path = key_file_path(folder)
        if path is not None and path.exists():
            out[ENV_SECRETS_KEY_FILE] = str(path.resolve())
    if not os.environ.get(ENV_SECRETS_OWNER):
        owner = current_owner(folder=folder)
        if owner:
            out[ENV_SECRETS_OWNER] = owner
    return out


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: everything but its values.

    Attributes:
        name: the secret's name.
        schema: its schema (``plain``, ``aws``, ...).
        keys: its key names, sorted.
        owner: the owner id of whoever created it.
        shared: whether other owners can see and use it.
        mine: whether it belongs to this process's owner.
        key_id: fingerprint of the key its values are encrypted with.
    """

    name: str
    schema: str
    keys: tuple[str, ...]
    owner: str
    shared: bool
    mine: bool
    key_id: str
    created: datetime
    updated: datetime

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (no values)."""
        return {
            "name": self.name,
            "schema": self.schema,
            "keys": list(self.keys),
            "owner": self.owner,
            "shared": self.shared,
            "mine": self.mine,
            "key_id": self.key_id,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
        }


@dataclass(frozen=True)
class Secret(SecretInfo):
    """A secret with its decrypted values (``secret["key"]`` or ``secret.values``); ``repr`` hides them."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, key: str) -> str:
        try:
            return self.values[key]
        except KeyError:
            raise SecretError(
                f"secret {self.name!r} has no key {key!r}", f"its keys: {', '.join(self.keys) or '(none)'}"
            ) from None


@dataclass(frozen=True)
class RotationResult:
    """What :meth:`SecretStore.rotate_key` did.

    Attributes:
        rotated: how many secrets were re-encrypted with the new key.
        skipped: secrets in the store encrypted with keys this process does not hold (left as they were).
        old_key_ids: fingerprints of the keys replaced.
        new_key_id: fingerprint of the key now in force.
        source: where the new key is (a key file, or the environment variable).
    """

    rotated: int
    skipped: int
    old_key_ids: tuple[str, ...]
    new_key_id: str
    source: str


class SecretStore:
    """Encrypted secrets in a metadata store.

    Args:
        store: the metadata store holding the ``secrets`` table.
        folder: the repository's ``.conveyor/`` folder, where its key file and
            owner id are (default: the working folder's repository).
        owner: the owner id to act as (default: :func:`current_owner`).
    """

    def __init__(self, store: SqlDatabase, *, folder: Path | None = None, owner: str | None = None) -> None:
        self.store = store
        self.folder = folder
        self._owner = owner

    # -- who and which key -----------------------------------------------------------
    @property
    def owner(self) -> str | None:
        """The owner id this store acts as (None: only shared secrets are visible)."""
        if self._owner is None:
            self._owner = current_owner(folder=self.folder)
        return self._owner

    def _own_owner(self) -> str:
        if self.owner is None:
            self._owner = current_owner(create=True, folder=self.folder)
        assert self._owner is not None
        return self._owner

    def keyring(self, *, create: bool = False) -> KeyRing:
        """The keys in force (see :func:`conveyor.secrets.load_keyring`)."""
        return load_keyring(create=create, folder=self.folder)

    # -- rows ------------------------------------------------------------------------
    @staticmethod
    def _table() -> sa.Table:
        from conveyor.stores.sql._schema import secrets

        return secrets

    def _info(self, row: Any, cls: type[SecretInfo] = SecretInfo, **extra: Any) -> Any:
        from conveyor.stores.sql._engine import aware as _aware

        return cls(
            name=row.name,
            schema=row.schema_name,
            keys=tuple(sorted(row.key_names)),
            owner=row.owner,
            shared=bool(row.shared),
            mine=row.owner == self.owner,
            key_id=row.key_id,
            created=_aware(row.created),
            updated=_aware(row.updated),
            **extra,
        )

    def _visible_rows(self, conn: sa.Connection, name: str | None = None) -> list[Any]:
        import sqlalchemy as sa

        t = self._table()
        scope = t.c.shared.is_(True) if self.owner is None else sa.or_(t.c.owner == self.owner, t.c.shared.is_(True))
        stmt = sa.select(t).where(scope).order_by(t.c.name, t.c.owner)
        if name is not None:
            stmt = stmt.where(t.c.name == name)
        return list(conn.execute(stmt).all())

    def _find(self, conn: sa.Connection, name: str) -> Any:
        rows = self._visible_rows(conn, name)
        own = [r for r in rows if r.owner == self.owner]
        if own:
            return own[0]
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            owners = ", ".join(r.owner for r in rows)
            raise SecretError(
                f"secret {name!r} is shared by several owners ({owners})", "ask all but one to unshare it"
            )
        raise SecretError(f"no secret {name!r}", f"create it: conveyor secret create {name} --KEY=VALUE")

    def _find_own(self, conn: sa.Connection, name: str) -> Any:
        row = self._find(conn, name)
        if row.owner != self.owner:
            raise SecretError(f"secret {name!r} belongs to {row.owner}", "only its owner can change or delete it")
        return row

    # -- encryption ------------------------------------------------------------------
    def _plaintext(self, name: str, owner: str, values: Mapping[str, str]) -> bytes:
        return json.dumps(
            {"format": _FORMAT, "name": name, "owner": owner, "values": dict(values)}, sort_keys=True
        ).encode("utf-8")

    def _decrypt(self, row: Any, keyring: KeyRing) -> dict[str, str]:
        data = keyring.decrypt(row.ciphertext)
        if data is None:
            raise SecretError(
                f"cannot decrypt secret {row.name!r}: it was stored with key {row.key_id}, "
                f"and the key from {keyring.source} is {keyring.primary_id}",
                f"use the key it was stored with ({ENV_SECRETS_KEY} or {ENV_SECRETS_KEY_FILE})",
            )
        payload = json.loads(data)
        if payload.get("name") != row.name or payload.get("owner") != row.owner:
            raise SecretError(
                f"secret {row.name!r} holds the encrypted values of another secret",
                "the database was altered: create the secret again",
            )
        return dict(payload["values"])

    # -- reading ---------------------------------------------------------------------
    def list(self) -> list[SecretInfo]:
        """Your secrets and the shared ones, by name (values are never read)."""
        with self.store.read() as conn:
            rows = self._visible_rows(conn)
        return [self._info(r) for r in rows]

    def info(self, name: str) -> SecretInfo:
        """A secret's name, schema, keys and scope, without decrypting it.

        Raises:
            SecretError: no such secret (own or shared).
        """
        with self.store.read() as conn:
            return self._info(self._find(conn, name))

    def get(self, name: str) -> Secret:
        """A secret with its decrypted values; the values are masked in step logs from now on.

        Raises:
            SecretError: no such secret, or the key in force cannot decrypt it.
        """
        with self.store.read() as conn:
            row = self._find(conn, name)
        values = self._decrypt(row, self.keyring())
        mask_values(values.values())
        return self._info(row, Secret, values=MappingProxyType(values))

    def resolve(self, name: str, key: str) -> str:
        """The value of one key of a secret.

        Raises:
            SecretError: no such secret or key (named, without any value).
        """
        return self.get(name)[key]

    # -- writing ---------------------------------------------------------------------
    def create(
        self, name: str, values: Mapping[str, str], *, schema: str = "plain", shared: bool = False
    ) -> SecretInfo:
        """Store a new secret, encrypted.

        Raises:
            SecretError: a bad name, schema, key or value; the name is taken.
        """
        import sqlalchemy as sa

        from conveyor.stores import new_id, now

        check_name(name)
        clean = validate_values(name, schema, values)
        owner = self._own_owner()
        t = self._table()
        with self.store.read() as conn:
            mine = conn.execute(sa.select(t.c.name).where(t.c.owner == owner).limit(1)).first() is not None
        # A repository that already has secrets must not get a fresh key silently:
        # its older secrets would no longer decrypt.
        keyring = self.keyring(create=not mine)
        stamp = now()
        with self.store.write() as conn:
            taken = conn.execute(sa.select(t.c.owner, t.c.shared).where(t.c.name == name)).all()
            if any(r.owner == owner for r in taken):
                raise SecretError(f"secret {name!r} exists", f"change it: conveyor secret update {name} --KEY=VALUE")
            if shared:
                _check_share(name, taken, owner)
            conn.execute(
                t.insert().values(
                    id=new_id(),
                    name=name,
                    owner=owner,
                    shared=shared,
                    schema_name=schema,
                    key_names=sorted(clean),
                    ciphertext=keyring.encrypt(self._plaintext(name, owner, clean)),
                    key_id=keyring.primary_id,
                    created=stamp,
                    updated=stamp,
                )
            )
        return self.info(name)

    def update(
        self,
        name: str,
        values: Mapping[str, str] | None = None,
        *,
        remove_keys: Iterable[str] = (),
        replace: bool = False,
        shared: bool | None = None,
    ) -> SecretInfo:
        """Change a secret of yours: set keys, remove keys, share or unshare it.

        Args:
            values: keys to set (merged over the old ones unless ``replace``).
            remove_keys: keys to remove.
            replace: the secret's values become exactly ``values``.
            shared: share (True) or unshare (False) it; None leaves it.

        Raises:
            SecretError: no such secret of yours; the result breaks its schema.
        """
        from conveyor.stores import now

        t = self._table()
        keyring = self.keyring()
        with self.store.write() as conn:
            row = self._find_own(conn, name)
            old = self._decrypt(row, keyring)
            new = {} if replace else dict(old)
            new.update(values or {})
            for key in remove_keys:
                if key not in new:
                    raise SecretError(f"secret {name!r} has no key {key!r}", f"its keys: {', '.join(sorted(old))}")
                del new[key]
            clean = validate_values(name, row.schema_name, new)
            changes: dict[str, Any] = {}
            if clean != old:
                changes.update(
                    key_names=sorted(clean),
                    ciphertext=keyring.encrypt(self._plaintext(name, row.owner, clean)),
                    key_id=keyring.primary_id,
                )
            if shared is not None and shared != bool(row.shared):
                if shared:
                    import sqlalchemy as sa

                    others = conn.execute(sa.select(t.c.owner, t.c.shared).where(t.c.name == name)).all()
                    _check_share(name, others, row.owner)
                changes["shared"] = shared
            if changes:
                conn.execute(t.update().where(t.c.id == row.id).values(updated=now(), **changes))
        return self.info(name)

    def delete(self, name: str) -> None:
        """Delete a secret of yours.

        Raises:
            SecretError: no such secret of yours.
        """
        t = self._table()
        with self.store.write() as conn:
            row = self._find_own(conn, name)
            conn.execute(t.delete().where(t.c.id == row.id))

    # -- key rotation ----------------------------------------------------------------
    def rotate_key(self) -> RotationResult:
        """Re-encrypt every secret this process can decrypt with a new key, in one transaction.

        With a key file, a new key is made and written to ``secrets.key.new``
        first; once every value is re-encrypted it replaces ``secrets.key``
        (atomically). With ``CONVEYOR_SECRETS_KEY``, put the new key first
        (``NEW,OLD``), rotate, then drop the old one from the variable.

        Raises:
            SecretError: there is no key; the variable holds only one key; a value would not survive.
        """
        from cryptography.fernet import Fernet, InvalidToken, MultiFernet

        old = self.keyring()
        if old.path is None:
            if len(old.keys) < 2:
                raise SecretError(
                    f"{old.source} holds one key: there is nothing to rotate to",
                    f"put a new key first: {ENV_SECRETS_KEY}=NEW,OLD (make one: conveyor secret generate-key)",
                )
            new_key, old_keys = old.keys[0], old.keys[1:]
        else:
            pending = pending_path(old.path)
            if pending.exists():  # finish the interrupted rotation with the key it started
                new_key = read_key_file(pending)[0]
                old_keys = tuple(k for k in old.keys if k != new_key)
            else:
                new_key = generate_key().encode("ascii")
                old_keys = old.keys
                write_private_file(pending, new_key.decode("ascii"))
        new_fernet = Fernet(new_key)
        ring = MultiFernet([new_fernet, *(Fernet(k) for k in old_keys)])
        new_id = key_id(new_key)
        t = self._table()
        rotated = skipped = 0
        import sqlalchemy as sa

        with self.store.write() as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.name, t.c.ciphertext).with_for_update()).all()
            for row in rows:
                try:
                    token = ring.rotate(row.ciphertext.encode("ascii"))
                except InvalidToken:
                    skipped += 1  # another owner's secret under a key we do not hold
                    continue
                if new_fernet.decrypt(token) != ring.decrypt(row.ciphertext.encode("ascii")):
                    raise SecretError(f"re-encrypting secret {row.name!r} did not round-trip; nothing was changed")
                conn.execute(t.update().where(t.c.id == row.id).values(ciphertext=token.decode("ascii"), key_id=new_id))
                rotated += 1
        if old.path is not None:
            install_pending_key(old.path)
        return RotationResult(
            rotated=rotated,
            skipped=skipped,
            old_key_ids=tuple(key_id(k) for k in old_keys),
            new_key_id=new_id,
            source=old.source,
        )


def _check_share(name: str, rows: Iterable[Any], owner: str) -> None:
    for r in rows:
        if r.shared and r.owner != owner:
            raise SecretError(
                f"{r.owner} already shares a secret named {name!r}", "shared names are unique: pick another name"
            )
