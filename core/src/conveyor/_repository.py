"""The repository: the ``.conveyor/`` folder, found from any subfolder like git's.

It holds ``config.json`` (the active stack, the metadata store URL), the
default SQLite database and the default artifact folder.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.constants import ENV_REPOSITORY, ENV_STACK, ENV_STORE_URL, REPOSITORY_DIR
from conveyor.exceptions import ConfigError

if TYPE_CHECKING:
    from conveyor.stack import Stack
    from conveyor.stores import MetadataStore

DEFAULT_STACK = "default"
_CONFIG = "config.json"
_stores: dict[str, MetadataStore] = {}
_stores_lock = threading.Lock()


class Repository:
    """A folder that holds ``.conveyor/``.

    Args:
        root: the folder that contains ``.conveyor/``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.dir = self.root / REPOSITORY_DIR

    def __repr__(self) -> str:
        return f"Repository({str(self.root)!r})"

    # -- finding ---------------------------------------------------------------------
    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None) -> Repository | None:
        """The repository containing ``start`` (default: the working folder), or None."""
        env = os.environ.get(ENV_REPOSITORY)
        if env and start is None:
            return cls(Path(env))
        here = Path(start or os.getcwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / REPOSITORY_DIR).is_dir():
                return cls(folder)
        return None

    @classmethod
    def init(cls, path: str | os.PathLike[str] | None = None) -> Repository:
        """Create ``.conveyor/`` in ``path`` (default: the working folder); fine if it exists."""
        repo = cls(Path(path or os.getcwd()))
        repo.dir.mkdir(parents=True, exist_ok=True)
        if not (repo.dir / _CONFIG).exists():
            repo._write_config({"active_stack": DEFAULT_STACK})
        gitignore = repo.dir / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# conveyor's local database and artifacts\n*\n")
        return repo

    @classmethod
    def current(cls) -> Repository:
        """The repository of the working folder, created there on first use."""
        repo = cls.find()
        if repo is None:
            repo = cls.init(os.environ.get(ENV_REPOSITORY) or None)
            print(f"conveyor: created a repository in {repo.dir}", file=sys.stderr)
        elif not repo.dir.is_dir():
            repo = cls.init(repo.root)
        return repo

    # -- config ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The repository config (``{}`` when there is none yet)."""
        try:
            return json.loads((self.dir / _CONFIG).read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError:
            raise ConfigError(f"{self.dir / _CONFIG} is not valid JSON", "fix or delete it") from None

    def _write_config(self, config: dict[str, Any]) -> None:
        path = self.dir / _CONFIG
        # A name of its own: processes racing to create the repository each replace the file whole.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def update_config(self, **values: Any) -> None:
        """Change keys of the repository config."""
        config = self.config()
        config.update(values)
        self._write_config(config)

    @property
    def store_url(self) -> str:
        """The metadata store URL: ``CONVEYOR_STORE_URL``, the config, or the SQLite default."""
        url = os.environ.get(ENV_STORE_URL) or self.config().get("store_url")
        return url or f"sqlite:///{self.dir / 'conveyor.db'}"

    @property
    def default_artifact_path(self) -> str:
        """The folder of the default local artifact store."""
        return str(self.dir / "artifacts")

    @property
    def active_stack_name(self) -> str:
        """The active stack: ``CONVEYOR_STACK``, else the config's, else ``default``."""
        return os.environ.get(ENV_STACK) or self.config().get("active_stack") or DEFAULT_STACK

    # -- stores and stacks -----------------------------------------------------------
    def store(self) -> MetadataStore:
        """The metadata store (opened once per process and URL)."""
        url = self.store_url
        with _stores_lock:
            store = _stores.get(url)
            if store is None:
                from conveyor.stores import open_store

                store = open_store(url)
                ensure_default_stack(store, self.default_artifact_path)
                _stores[url] = store
        return store

    def stack(self, name: str | None = None) -> Stack:
        """A stack by name (default: the active one)."""
        from conveyor.stack import Stack

        return Stack.from_record(self.store().get_stack(name or self.active_stack_name))


def ensure_default_stack(store: MetadataStore, artifact_path: str) -> None:
    """Create the ``default`` stack (local orchestrator and artifact store) if missing."""
    spec = {
        "orchestrator": (DEFAULT_STACK, "local", {}),
        "artifact_store": (DEFAULT_STACK, "local", {"path": artifact_path}),
    }
    store.ensure_stack(DEFAULT_STACK, spec)


def close_stores() -> None:
    """Close every metadata store this process opened; the next use opens them again.

    For long-lived processes that switch repositories or stores (test suites,
    notebooks), so no database file or connection stays open behind them.
    """
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
