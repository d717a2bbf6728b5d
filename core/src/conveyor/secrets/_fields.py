"""Config fields that carry credentials: one rule for every flavor.

A credential in a component's config is stored in the metadata store, shown
by ``describe``, copied into deployments and compiled DAGs and specs. So a
field that holds one accepts only a ``{{secret.key}}`` reference
(:data:`SecretReference`), and a metadata store URL given to remote workers
carries no password at all (:data:`StoreURL`): workers get it from their own
environment, since the secrets it would unlock live behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from conveyor.exceptions import ConfigError
from conveyor.secrets._references import REFERENCE

SECRETS_RESOLVED = "conveyor_secrets_resolved"
"""Validation context key (``model_validate(..., context={SECRETS_RESOLVED: True})``): references were resolved."""

CREDENTIAL_OPTION_NAMES = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "secret_key",
        "access_key",
        "access_key_id",
        "secret_access_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "session_token",
        "client_secret",
        "account_key",
        "sas_token",
        "connection_string",
        "credentials",
        "private_key",
    }
)
"""Option names (of fsspec storage options and the like) whose values are credentials."""


def is_reference(value: object) -> bool:
    """Whether ``value`` is exactly one ``{{secret.key}}`` reference."""
    return isinstance(value, str) and REFERENCE.fullmatch(value.strip()) is not None


def _reference(value: str, info: ValidationInfo) -> str:
    if info.context and info.context.get(SECRETS_RESOLVED):
        return value  # the component is being built: the reference was replaced by its value
    if not is_reference(value):
        raise PydanticCustomError(
            "secret_reference",
            "holds a credential, so it takes only a secret reference such as '{{name.key}}', not the value itself",
            {"hint": secret_hint(info.field_name or "credential")},
        )
    return value.strip()


SecretReference = Annotated[str, AfterValidator(_reference)]
"""A config field that holds a credential: only a ``{{secret.key}}`` reference is accepted."""


def _store_url(value: str) -> str:
    import sqlalchemy as sa

    try:
        url = sa.make_url(value)
    except sa.exc.ArgumentError:
        raise PydanticCustomError(
            "store_url", "is not a database URL (e.g. postgresql+psycopg://user@host/db)"
        ) from None
    if url.password is not None:
        raise PydanticCustomError(
            "store_url_password",
            "must not carry a password: it would be written into every compiled pipeline; give the workers "
            "the whole URL in their own environment (CONVEYOR_STORE_URL) instead",
        )
    return value


StoreURL = Annotated[str, AfterValidator(_store_url)]
"""A metadata store URL handed to remote workers: never with a password in it."""


def secret_hint(option: str) -> str:
    """How to store a credential given in clear, as one line naming the commands."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in option.strip("-").lower()) or "credential"
    return (
        f"store it once: conveyor secret create {name} --{name} (it asks for the value), "
        f"then give '{{{{{name}.{name}}}}}' instead"
    )


def check_credential_options(options: Mapping[str, Any], where: str, *, prefix: str = "") -> None:
    """Refuse credentials given in clear inside a mapping of options (fsspec storage options).

    Args:
        prefix: the option that holds the mapping, for the message (``"storage_options"``).

    Raises:
        ConfigError: an option named like a credential holds something other than a reference.
    """
    pending: list[tuple[str, Any]] = [(f"{prefix}.{k}" if prefix else k, v) for k, v in options.items()]
    while pending:
        name, value = pending.pop()
        if isinstance(value, Mapping):
            pending.extend((f"{name}.{k}", v) for k, v in value.items())
            continue
        leaf = name.rsplit(".", 1)[-1].lower()
        if leaf in CREDENTIAL_OPTION_NAMES and value not in (None, "", False) and not is_reference(value):
            raise ConfigError(
                f"{where}: {name} holds a credential, so it takes only a secret reference, not the value itself",
                secret_hint(leaf),
            )
