"""Secrets on a conveyor server: the same calls as :class:`conveyor.secrets.SecretStore`, answered by the server.

The server holds the encryption key; values cross the wire only to a
caller allowed to use them (an admin, or a run's token for the secrets its
deployment refers to), and are masked in this process's step logs as soon
as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from conveyor.stores.rest._http import segment
from conveyor.stores.rest._wire import when

if TYPE_CHECKING:
    from conveyor.secrets import RotationResult, Secret, SecretInfo
    from conveyor.stores.rest._store import RestStore


class RestSecretStore:
    """The secrets of a conveyor server, as this credential may see them.

    Args:
        store: the REST store whose server holds them.
    """

    def __init__(self, store: RestStore) -> None:
        self.store = store
        self.folder = None

    @property
    def owner(self) -> str:
        """Secrets on a server belong to the server's team."""
        return "server"

    @staticmethod
    def _info(data: dict[str, Any], cls: Any = None, **extra: Any) -> Any:
        from conveyor.secrets import SecretInfo

        return (cls or SecretInfo)(
            name=data["name"],
            schema=data["schema"],
            keys=tuple(data["keys"]),
            owner=data["owner"],
            shared=bool(data["shared"]),
            mine=bool(data["mine"]),
            key_id=data["key_id"],
            created=when(data["created"]),
            updated=when(data["updated"]),
            **extra,
        )

    # -- reading ---------------------------------------------------------------------
    def list(self) -> list[SecretInfo]:
        """Every secret's name, schema and keys (never values)."""
        return [self._info(s) for s in self.store.http.request("GET", "/api/secrets")]

    def info(self, name: str) -> SecretInfo:
        """A secret's name, schema and keys, without its values."""
        return self._info(self.store.http.request("GET", f"/api/secrets/{segment(name)}"))

    def get(self, name: str) -> Secret:
        """A secret with its values, if this credential may use it; the values are masked in step logs from now on.

        Raises:
            SecretError: no such secret.
            PermissionDeniedError: this credential may not read it.
        """
        from conveyor.secrets import Secret, mask_values

        data = self.store.http.request("POST", "/api/secrets/resolve", {"names": [name]})["secrets"][name]
        values = dict(data["values"])
        mask_values(values.values())
        return self._info(data["info"], Secret, values=MappingProxyType(values))

    def resolve(self, name: str, key: str) -> str:
        """The value of one key of a secret."""
        return self.get(name)[key]

    # -- writing (admins) ------------------------------------------------------------
    def create(
        self, name: str, values: Mapping[str, str], *, schema: str = "plain", shared: bool = False
    ) -> SecretInfo:
        """Store a new secret on the server (encrypted there)."""
        body = {"name": name, "values": dict(values), "schema": schema, "shared": shared}
        return self._info(self.store.http.request("POST", "/api/secrets", body))

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
        return self._info(self.store.http.request("PATCH", f"/api/secrets/{segment(name)}", body))

    def delete(self, name: str) -> None:
        """Delete a secret."""
        self.store.http.request("DELETE", f"/api/secrets/{segment(name)}")

    def rotate_key(self) -> RotationResult:
        """Re-encrypt every secret with a new key, on the server."""
        from conveyor.secrets import RotationResult

        data = self.store.http.request("POST", "/api/secrets/rotate-key", {})
        return RotationResult(
            rotated=data["rotated"],
            skipped=data["skipped"],
            old_key_ids=tuple(data["old_key_ids"]),
            new_key_id=data["new_key_id"],
            source=data["source"],
        )
