"""``{{name.key}}`` references: stored as written, resolved only where a step or a build needs the value.

Component configs and step environments keep the reference text in the
metadata store, the deployment and every compiled form. The value is looked
up when a component is created from its config (the step entrypoint; the
image builder and registry push on the submitting machine) and when a step
process gets its environment; every value looked up is masked in step logs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import SecretError
from conveyor.secrets._keys import repository_folder
from conveyor.secrets._schemas import NAME_PATTERN

if TYPE_CHECKING:
    from conveyor.secrets._store import Secret, SecretStore
    from conveyor.stores import MetadataStore

REFERENCE = re.compile(rf"\{{\{{\s*({NAME_PATTERN})\.({NAME_PATTERN})\s*\}}\}}")
"""A reference: ``{{secret_name.key}}`` (spaces inside the braces allowed)."""

_stores: dict[str, MetadataStore] = {}
_stores_lock = threading.Lock()


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _strings(value)


def find_references(obj: Any) -> list[tuple[str, str]]:
    """Every ``(secret, key)`` referenced in the strings of ``obj`` (dicts, lists, strings), sorted."""
    return sorted({(m.group(1), m.group(2)) for s in _strings(obj) for m in REFERENCE.finditer(s)})


def has_references(obj: Any) -> bool:
    """Whether any string in ``obj`` holds a ``{{name.key}}`` reference."""
    return any(REFERENCE.search(s) for s in _strings(obj))


def default_store() -> MetadataStore:
    """The metadata store to read secrets from, as ``Repository.store()`` finds it.

    ``CONVEYOR_STORE_URL``, else ``CONVEYOR_SERVER`` (with ``CONVEYOR_API_KEY``),
    else a server profile, else the repository config's ``store_url``, else the
    repository's SQLite file (one rule: :func:`conveyor.stores.store_target`).

    Raises:
        SecretError: there is neither a URL nor a repository.
    """
    from conveyor.constants import ENV_SERVER, ENV_STORE_URL
    from conveyor.stores import store_target

    folder = repository_folder()
    target = store_target(folder if folder is not None and folder.is_dir() else None)
    if not target.url:
        raise SecretError(
            "cannot resolve secret references: no metadata store",
            f"set {ENV_STORE_URL} or {ENV_SERVER}, or run inside a conveyor repository",
        )
    with _stores_lock:
        store = _stores.get(target.url)
        if store is None:
            from conveyor.stores import open_store

            store = _stores[target.url] = open_store(target.url, token=target.token)
    return store


def _secret_store(store: MetadataStore | None) -> SecretStore:
    return (store if store is not None else default_store()).secret_store()


class _Resolver:
    def __init__(self, store: MetadataStore | None) -> None:
        self._store = store
        self._secrets: SecretStore | None = None
        self._loaded: dict[str, Secret] = {}

    def value(self, name: str, key: str) -> str:
        secret = self._loaded.get(name)
        if secret is None:
            if self._secrets is None:
                self._secrets = _secret_store(self._store)
            secret = self._loaded[name] = self._secrets.get(name)
        return secret[key]

    def text(self, text: str) -> str:
        whole = REFERENCE.fullmatch(text.strip())
        if whole is not None:
            return self.value(whole.group(1), whole.group(2))
        return REFERENCE.sub(lambda m: self.value(m.group(1), m.group(2)), text)

    def walk(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj) if REFERENCE.search(obj) else obj
        if isinstance(obj, Mapping):
            return {k: self.walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.walk(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.walk(v) for v in obj)
        return obj


def resolve_references(obj: Any, store: MetadataStore | None = None) -> Any:
    """A copy of ``obj`` with every ``{{name.key}}`` replaced by its value (``obj`` is left as it was).

    A string that is exactly one reference becomes the value; references
    inside longer strings are substituted in place. Strings with other
    ``{{ ... }}`` text (engine templates) are left alone.

    Args:
        obj: a string, or dicts and lists of them.
        store: the metadata store holding the secrets (default: :func:`default_store`).

    Raises:
        SecretError: a secret or key is missing; the message names it, never a value.
    """
    return _Resolver(store).walk(obj)


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """A component config with its secret references resolved (the hook ``conveyor.stack.resolve_config`` calls)."""
    return resolve_references(config)


def resolve_environment(environment: Mapping[str, str], store: MetadataStore | None = None) -> dict[str, str]:
    """Step environment variables with their references resolved, for the step's own process."""
    if not has_references(dict(environment)):
        return dict(environment)
    return resolve_references(dict(environment), store)


def load_step_secrets(
    store: MetadataStore, names: Iterable[str], environment: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """What the step entrypoint gives a running step: its declared secrets, and its environment resolved.

    Variables of ``environment`` that hold references are set in
    ``os.environ`` to their values when the engine passed them through
    unresolved (or not at all); an orchestrator that resolved them already
    is left as it was. Every secret value read is masked in step logs.

    Returns:
        ``{secret name: {key: value}}`` for ``StepContext.secrets``.

    Raises:
        SecretError: a declared secret or a referenced key is missing.
    """
    secrets = _secret_store(store)
    out = {name: dict(secrets.get(name).values) for name in names}
    resolved = resolve_environment(environment or {}, store)
    for var, raw in (environment or {}).items():
        if resolved[var] != raw and os.environ.get(var, raw) == raw:
            os.environ[var] = resolved[var]
    return out
