"""The repository: the ``.conveyor/`` folder, found from any subfolder like git's.

It holds ``config.json`` (the active stack, the metadata store URL), the
default SQLite database and the default artifact folder.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.constants import (
    ENV_PROFILE,
    ENV_REPOSITORY,
    ENV_SERVER,
    ENV_STACK,
    ENV_STEP_ENTRYPOINT,
    ENV_STORE_URL,
    REPOSITORY_DIR,
)
from conveyor.exceptions import ConfigError

if TYPE_CHECKING:
    from conveyor.exceptions import NoRepositoryError
    from conveyor.ir import Deployment
    from conveyor.stack import Stack
    from conveyor.stores import MetadataStore, RunRecord, StoreTarget

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
        """The repository of the working folder, created there on first use.

        Only running a pipeline (and ``conveyor init``) calls this; everything
        that reads or registers uses :meth:`existing`, which never creates one.
        """
        repo = cls.find()
        if repo is None or not repo.dir.is_dir():
            repo = cls.init(repo.root if repo is not None else None)
            print(f"conveyor: created a repository in {repo.dir}", file=sys.stderr)
        return repo

    @classmethod
    def existing(cls) -> Repository:
        """The repository of the working folder (or ``CONVEYOR_REPOSITORY``); never creates one.

        With ``CONVEYOR_STORE_URL`` or ``CONVEYOR_SERVER`` set, or a server profile
        active, a folder without ``.conveyor/`` still reads that store (a team store
        needs no local folder); only changing the local config then needs a repository.

        Raises:
            NoRepositoryError: there is none, and no store URL is set.
        """
        repo = cls.find()
        if repo is not None and repo.dir.is_dir():
            return repo
        if os.environ.get(ENV_STORE_URL) or os.environ.get(ENV_SERVER) or _server_profile_active():
            return repo or cls(Path(os.getcwd()))
        raise no_repository(repo)

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
        if not self.dir.is_dir():
            raise no_repository(self)
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
        """The metadata store URL: ``CONVEYOR_STORE_URL``, ``CONVEYOR_SERVER``, a server profile, the config, or SQLite."""
        return self.store_target().url

    def store_target(self) -> StoreTarget:
        """Which metadata store this repository uses, with the credential for a server (see :mod:`conveyor.stores`)."""
        from conveyor.stores import store_target

        return store_target(self.dir)

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
        target = self.store_target()
        url = target.url
        with _stores_lock:
            store = _stores.get(url)
            if store is None:
                from conveyor.stores import open_store

                in_step = bool(os.environ.get(ENV_STEP_ENTRYPOINT))
                if target.announce and not in_step:
                    # Which team store (or profile) a command lists from or runs into: one line.
                    print(f"conveyor: using {target.describe()}", file=sys.stderr)
                store = open_store(url, token=target.token)
                ensure_default_stack(store, self.default_artifact_path)
                if not in_step:
                    # A step process may run in a container, where this machine's PIDs are not visible.
                    settle_dead_runs(store)
                _stores[url] = store
        return store

    def set_aside_damaged_store(self) -> Path | None:
        """Rename the repository's SQLite database away if it cannot be opened; returns where it went.

        A store that opens is left alone (``init --force`` never throws away a working store).

        Raises:
            ConfigError: the store is not the repository's own SQLite file (a server database is not moved).
        """
        from conveyor.exceptions import StoreError
        from conveyor.stores import open_store

        url = self.store_url
        own = f"sqlite:///{self.dir / 'conveyor.db'}"
        if url != own:
            raise ConfigError(
                f"the metadata store is {url.split('@')[-1]}, not this repository's file",
                "repair or restore that database from its backup; --force only replaces the repository's SQLite file",
            )
        path = self.dir / "conveyor.db"
        if not path.exists():
            return None
        try:
            open_store(url).close()
            return None
        except StoreError:
            pass
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"conveyor.db.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{path}{suffix}")
            if part.exists():
                os.replace(part, Path(f"{target}{suffix}"))
        return target

    def stack(self, name: str | None = None) -> Stack:
        """A stack by name (default: the active one)."""
        from conveyor.stack import Stack

        return Stack.from_record(self.store().get_stack(name or self.active_stack_name))


def _server_profile_active() -> bool:
    from conveyor.stores._profiles import Profiles

    profiles = Profiles()
    if not profiles.exists() and not os.environ.get(ENV_PROFILE):
        return False
    return profiles.active().url is not None


def no_repository(repo: Repository | None) -> NoRepositoryError:
    """The error of a command that needs a repository where there is none."""
    from conveyor.exceptions import NoRepositoryError

    if repo is not None:  # CONVEYOR_REPOSITORY names a folder without one
        where = f"in {repo.root} ({ENV_REPOSITORY})"
        fix = f"create it with `conveyor init {repo.root}`"
    else:
        where = f"in {os.getcwd()} or any folder above it"
        fix = "create one here with `conveyor init`; running a pipeline creates one too"
    return NoRepositoryError(f"no conveyor repository {where}", fix)


def ensure_default_stack(store: MetadataStore, artifact_path: str) -> None:
    """Create the ``default`` stack (local orchestrator and artifact store) if missing."""
    spec = {
        "orchestrator": (DEFAULT_STACK, "local", {}),
        "artifact_store": (DEFAULT_STACK, "local", {"path": artifact_path}),
    }
    if store.backend == "rest":
        from conveyor.exceptions import PermissionDeniedError

        try:
            store.ensure_stack(DEFAULT_STACK, spec)
        except PermissionDeniedError:
            pass  # only an admin creates stacks on a server; a viewer still reads what is there
        return
    store.ensure_stack(DEFAULT_STACK, spec)


def settle_dead_runs(store: MetadataStore) -> None:
    """Fail runs whose driver on this machine was killed, and remove what their killed saves left.

    Best effort: on a full disk or a read-only copy, reading what is there must still work.
    """
    from conveyor.exceptions import ConveyorError

    try:
        dead = store.fail_dead_runs()
    except ConveyorError as exc:
        print(f"conveyor: warning: could not mark killed runs as failed: {exc.message}", file=sys.stderr)
        return
    for run in dead:
        try:
            remove_temporary_folders(store, run)
        except Exception as exc:  # noqa: BLE001 - an unreachable store keeps its leftovers until `conveyor gc`
            print(f"conveyor: warning: leftovers of run {run.name!r} stay: {exc}", file=sys.stderr)


def remove_temporary_folders(store: MetadataStore, run: RunRecord, deployment: Deployment | None = None) -> int:
    """Remove what the saves of a killed run left unregistered in its artifact store; returns how many.

    On a filesystem those are ``.tmp-*`` folders; in an object store, where
    artifacts are written in place, the output folders no record refers to.
    """
    from conveyor.ir import load_deployment
    from conveyor.stack import Stack
    from conveyor.stores import RunStatus

    if deployment is None:
        deployment = load_deployment(store.get_deployment_json(run.deployment_id))
    artifacts = Stack(deployment.stack).artifact_store
    if not artifacts.flat:
        return sum(
            artifacts.remove_temporary(artifacts.join(deployment.pipeline.name, step.id, run.name))
            for step in deployment.pipeline.steps
        )
    removed = 0
    for record in store.list_step_runs(run.id):
        if record.status == RunStatus.COMPLETED:
            continue
        folder = artifacts.join(deployment.pipeline.name, record.step_id, run.name)
        for output in deployment.pipeline.step(record.step_id).outputs:
            uri = artifacts.join(folder, output)
            if artifacts.exists(uri):
                artifacts.rmtree(uri)
                removed += 1
    return removed


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
