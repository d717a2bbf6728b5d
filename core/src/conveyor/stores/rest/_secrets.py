"""Secrets on a conveyor server: the same calls as :class:`conveyor.secrets.SecretStore`, answered by the server.

The server holds the encryption key; values cross the wire only to a
caller allowed to use them (an admin, or a run's token for the secrets its
deployment refers to), and are masked in this process's step logs as soon
as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import SecretError
from conveyor.secrets import KeyRing, RotationResult, Secret, SecretInfo, SecretStore, mask_values
from conveyor.stores.rest._http import segment
from conveyor.stores.rest._wire import when

if TYPE_CHECKING:
    from conveyor.stores.rest._store import RestStore

SERVER_OWNER = "server"
"""The owner of every secret on a server: the team's."""


def _stamp(value: Any) -> datetime:
    return when(value) or datetime.fromtimestamp(0, timezone.utc)


def _info(data: dict[str, Any]) -> SecretInfo:
    return SecretInfo(
        name=data["name"],
        schema=data["schema"],
        keys=tuple(data["keys"]),
        owner=data["owner"],
        shared=bool(data["shared"]),
        mine=bool(data["mine"]),
        key_id=data["key_id"],
        created=_stamp(data["created"]),
        updated=_stamp(data["updated"]),
    )


class RestSecretStore(SecretStore):
    """The secrets of a conveyor server, as this credential may see them.

    The same calls as :class:`~conveyor.secrets.SecretStore`; the server
    encrypts, decrypts and checks who may read what.

    Args:
        store: the REST store whose server holds them.
    """

    def __init__(self, store: RestStore) -> None:
        # The SQL side of SecretStore is never reached: every public call is answered by the server.
        super().__init__(store, owner=SERVER_OWNER)  # type: ignore[arg-type]
        self.rest = store

    def keyring(self, *, create: bool = False) -> KeyRing:
        """Never here: the server keeps its key."""
        raise SecretError(
            f"the secrets key of {self.rest.url} stays on the server", "rotate it there: secret rotate-key"
        )

    # -- reading ---------------------------------------------------------------------
    def list(self) -> list[SecretInfo]:
        """Every secret's name, schema and keys (never values)."""
        return [_info(s) for s in self.rest.http.request("GET", "/api/secrets")]

    def info(self, name: str) -> SecretInfo:
        """A secret's name, schema and keys, without its values."""
        return _info(self.rest.http.request("GET", f"/api/secrets/{segment(name)}"))

    def get(self, name: str) -> Secret:
        """A secret with its values, if this credential may use it; the values are masked in step logs from now on.

        Raises:
            SecretError: no such secret.
            PermissionDeniedError: this credential may not read it.
        """
        data = self.rest.http.request("POST", "/api/secrets/resolve", {"names": [name]})["secrets"][name]
        values = {str(k): str(v) for k, v in data["values"].items()}
        mask_values(values.values())
        info = _info(data["info"])
        return Secret(**{**info.__dict__, "values": MappingProxyType(values)})

    def resolve(self, name: str, key: str) -> str:
        """The value of one key of a secret."""
        return self.get(name)[key]

    # -- writing (admins) ------------------------------------------------------------
    def create(
        self, name: str, values: Mapping[str, str], *, schema: str = "plain", shared: bool = False
    ) -> SecretInfo:
        """Store a new secret on the server (encrypted there)."""
        body = {"name": name, "values": dict(values), "schema": schema, "shared": shared}
        return _info(self.rest.http.request("POST", "/api/secrets", body))

    def update(
        self,
        name: str,
        values: Mapping[str, str] | None = None,
        *,
        remove_keys: Iterable[str] = (),
        replace: bool = False,
        shared: bool | None = None,
    ) -> SecretInfo:
        """Set or remove keys of a secret, or share or unshare it."""
        body = {"values": dict(values or {}), "remove_keys": list(remove_keys), "replace": replace, "shared": shared}
        return _info(self.rest.http.request("PATCH", f"/api/secrets/{segment(name)}", body))

    def delete(self, name: str) -> None:
        """Delete a secret."""
        self.rest.http.request("DELETE", f"/api/secrets/{segment(name)}")

    def rotate_key(self) -> RotationResult:
        """Re-encrypt every secret with a new key, on the server."""
        data = self.rest.http.request("POST", "/api/secrets/rotate-key", {})
        return RotationResult(
            rotated=data["rotated"],
            skipped=data["skipped"],
            old_key_ids=tuple(data["old_key_ids"]),
            new_key_id=data["new_key_id"],
            source=data["source"],
        )
