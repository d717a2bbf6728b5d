"""Secret schemas: which keys a secret has.

``plain`` takes any keys; the typed schemas know the keys of a cloud or a
registry and check them when a secret is created or changed. Messages name
the secret, the schema and the key, never a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.exceptions import SecretError

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
"""Secret names and keys: letters, digits, ``_`` and ``-`` (no dots: ``{{name.key}}`` splits on the dot)."""

_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
MAX_NAME = 255
MAX_TOTAL = 32 * 1024
"""Largest total size of a secret's values, in characters."""


@dataclass(frozen=True)
class SecretSchema:
    """The keys a kind of secret has.

    Attributes:
        name: what ``--schema`` takes.
        description: one line for ``conveyor secret create --help``.
        required: keys that must be present.
        optional: keys that may be present (any key, when both are empty).
    """

    name: str
    description: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the schema knows (empty: any key)."""
        return self.required + self.optional

    def check(self, secret: str, values: Mapping[str, str]) -> None:
        """Check keys and values of a secret of this schema.

        Raises:
            SecretError: a missing, unknown or empty key, in one line.
        """
        where = f"secret {secret!r} ({self.name})"
        if self.keys:
            for key in values:
                if key not in self.keys:
                    raise SecretError(
                        f"{where}: unknown key {key!r}",
                        f"keys of the {self.name} schema: {', '.join(self.keys)}; any keys: --schema plain",
                    )
            for key in self.required:
                if key not in values:
                    raise SecretError(f"{where}: missing key {key!r}", f"required keys: {', '.join(self.required)}")
        elif not values:
            raise SecretError(f"{where}: has no keys", "give at least one: --KEY=VALUE")
        for key, value in values.items():
            if not value:
                raise SecretError(f"{where}: key {key!r} is empty")
        self._check_values(where, values)

    def _check_values(self, where: str, values: Mapping[str, str]) -> None:
        for key in _NO_WHITESPACE.get(self.name, ()):
            value = values.get(key)
            if value is not None and any(c.isspace() for c in value):
                raise SecretError(
                    f"{where}: key {key!r} must not contain whitespace", "check for a stray newline or space"
                )
        if self.name == "gcp":
            try:
                data = json.loads(values["service_account_json"])
            except ValueError:
                data = None
            if not isinstance(data, dict) or "type" not in data:
                raise SecretError(
                    f"{where}: key 'service_account_json' is not a service account key (a JSON object with 'type')",
                    "read it from the key file: --service_account_json=@path/to/key.json",
                )
        if self.name == "azure":
            complete = (
                "connection_string" in values
                or ("account_name" in values and ("account_key" in values or "sas_token" in values))
                or all(k in values for k in ("account_name", "tenant_id", "client_id", "client_secret"))
            )
            if not complete:
                raise SecretError(
                    f"{where}: needs connection_string, or account_name with account_key, sas_token, "
                    "or tenant_id + client_id + client_secret"
                )


_NO_WHITESPACE = {
    "aws": ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
    "azure": ("account_name", "account_key", "tenant_id", "client_id"),
    "registry": ("username",),
}

SCHEMAS: dict[str, SecretSchema] = {
    s.name: s
    for s in (
        SecretSchema("plain", "any keys"),
        SecretSchema(
            "aws",
            "AWS or S3-compatible credentials",
            required=("aws_access_key_id", "aws_secret_access_key"),
            optional=("aws_session_token",),
        ),
        SecretSchema("gcp", "a Google Cloud service account key", required=("service_account_json",)),
        SecretSchema(
            "azure",
            "Azure storage credentials",
            optional=(
                "account_name",
                "account_key",
                "sas_token",
                "connection_string",
                "tenant_id",
                "client_id",
                "client_secret",
            ),
        ),
        SecretSchema("registry", "container registry login", required=("username", "password")),
    )
}
"""Every schema by name."""


def get_schema(name: str) -> SecretSchema:
    """A schema by name.

    Raises:
        SecretError: no such schema.
    """
    try:
        return SCHEMAS[name]
    except KeyError:
        raise SecretError(f"unknown secret schema {name!r}", f"schemas: {', '.join(SCHEMAS)}") from None


def check_name(name: str, what: str = "secret name") -> None:
    """Check a secret name or key.

    Raises:
        SecretError: the name has characters a ``{{name.key}}`` reference cannot hold.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > MAX_NAME:
        raise SecretError(
            f"{what} {name!r} is not valid" if isinstance(name, str) else f"{what} must be a string",
            "use letters, digits, '_' and '-' (not starting with '-')",
        )


def validate_values(secret: str, schema: str, values: Mapping[str, object]) -> dict[str, str]:
    """Check a secret's values against its schema; return them as a plain dict.

    Raises:
        SecretError: a bad key or value (the message names the key, never the value).
    """
    clean: dict[str, str] = {}
    for key, value in values.items():
        check_name(key, f"secret {secret!r}: key")
        if not isinstance(value, str):
            raise SecretError(f"secret {secret!r}: key {key!r} must be a string, not {type(value).__name__}")
        clean[key] = value
    get_schema(schema).check(secret, clean)
    if sum(len(k) + len(v) for k, v in clean.items()) > MAX_TOTAL:
        raise SecretError(f"secret {secret!r} is larger than {MAX_TOTAL // 1024} KiB", "store a path to a file instead")
    return clean
