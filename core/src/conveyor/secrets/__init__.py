"""Secrets: encrypted values that components and steps refer to by name (``{{name.key}}``).

Values are encrypted at rest in the metadata store (Fernet, see
:mod:`conveyor.secrets._keys`) and resolved only where they are used: in the
step entrypoint, and on the submitting machine for image builds and pushes.
Compiled pipelines, the deployment and the component records keep the
references; step logs mask every value resolved in their process.

``import conveyor.secrets`` is cheap (the step log capture imports its
masking on every step): the names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ENV_SECRETS_KEY": "conveyor.secrets._keys",
    "ENV_SECRETS_KEY_FILE": "conveyor.secrets._keys",
    "ENV_SECRETS_OWNER": "conveyor.secrets._store",
    "KEY_FILE": "conveyor.secrets._keys",
    "MASK": "conveyor.secrets._redact",
    "OWNER_FILE": "conveyor.secrets._store",
    "CREDENTIAL_OPTION_NAMES": "conveyor.secrets._fields",
    "REFERENCE": "conveyor.secrets._references",
    "SECRETS_RESOLVED": "conveyor.secrets._fields",
    "SecretReference": "conveyor.secrets._fields",
    "StoreURL": "conveyor.secrets._fields",
    "check_credential_options": "conveyor.secrets._fields",
    "is_reference": "conveyor.secrets._fields",
    "secret_hint": "conveyor.secrets._fields",
    "SCHEMAS": "conveyor.secrets._schemas",
    "KeyRing": "conveyor.secrets._keys",
    "RotationResult": "conveyor.secrets._store",
    "Secret": "conveyor.secrets._store",
    "SecretInfo": "conveyor.secrets._store",
    "SecretSchema": "conveyor.secrets._schemas",
    "SecretStore": "conveyor.secrets._store",
    "current_owner": "conveyor.secrets._store",
    "default_store": "conveyor.secrets._references",
    "find_references": "conveyor.secrets._references",
    "generate_key": "conveyor.secrets._keys",
    "get_schema": "conveyor.secrets._schemas",
    "has_references": "conveyor.secrets._references",
    "key_file_path": "conveyor.secrets._keys",
    "load_keyring": "conveyor.secrets._keys",
    "load_step_secrets": "conveyor.secrets._references",
    "mask_values": "conveyor.secrets._redact",
    "process_environment": "conveyor.secrets._store",
    "redact": "conveyor.secrets._redact",
    "resolve_config": "conveyor.secrets._references",
    "resolve_environment": "conveyor.secrets._references",
    "resolve_references": "conveyor.secrets._references",
}

__all__ = [
    "CREDENTIAL_OPTION_NAMES",
    "ENV_SECRETS_KEY",
    "ENV_SECRETS_KEY_FILE",
    "ENV_SECRETS_OWNER",
    "KEY_FILE",
    "KeyRing",
    "MASK",
    "OWNER_FILE",
    "REFERENCE",
    "RotationResult",
    "SCHEMAS",
    "SECRETS_RESOLVED",
    "Secret",
    "SecretInfo",
    "SecretReference",
    "SecretSchema",
    "SecretStore",
    "StoreURL",
    "check_credential_options",
    "current_owner",
    "default_store",
    "find_references",
    "generate_key",
    "get_schema",
    "has_references",
    "is_reference",
    "key_file_path",
    "load_keyring",
    "load_step_secrets",
    "mask_values",
    "process_environment",
    "redact",
    "resolve_config",
    "resolve_environment",
    "resolve_references",
    "secret_hint",
]

if TYPE_CHECKING:
    from conveyor.secrets._fields import (
        CREDENTIAL_OPTION_NAMES,
        SECRETS_RESOLVED,
        SecretReference,
        StoreURL,
        check_credential_options,
        is_reference,
        secret_hint,
    )
    from conveyor.secrets._keys import (
        ENV_SECRETS_KEY,
        ENV_SECRETS_KEY_FILE,
        KEY_FILE,
        KeyRing,
        generate_key,
        key_file_path,
        load_keyring,
    )
    from conveyor.secrets._redact import MASK, mask_values, redact
    from conveyor.secrets._references import (
        REFERENCE,
        default_store,
        find_references,
        has_references,
        load_step_secrets,
        resolve_config,
        resolve_environment,
        resolve_references,
    )
    from conveyor.secrets._schemas import SCHEMAS, SecretSchema, get_schema
    from conveyor.secrets._store import (
        ENV_SECRETS_OWNER,
        OWNER_FILE,
        RotationResult,
        Secret,
        SecretInfo,
        SecretStore,
        current_owner,
        process_environment,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.secrets' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
