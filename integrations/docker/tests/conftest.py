"""Fixtures of conveyor-docker's tests: a repository per test, stacks that run in containers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples" / "conformance"


def _forget_stores() -> None:
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(root))
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # user code written into the repository imports
    _forget_stores()
    yield root
    _forget_stores()


@pytest.fixture
def examples_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``examples/conformance`` on sys.path, for importing the conformance pipelines."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return EXAMPLES


# -- Docker ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel cache for the session (the first image of a session prepares every wheel)."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="session")
def session_images(docker_daemon: Any, registry: Any) -> Iterator[None]:
    """Remove the images the session's builds made (tagged with the conveyor labels).

    Other sessions may share the daemon and build the same images for their own registries: only this
    session's registry's tags (and the user parent images it built) are removed.
    """
    import docker

    before = {i.id for i in docker_daemon.images.list(all=True)}
    yield
    for label in ("conveyor.image", "conveyor.parent"):
        for image in docker_daemon.images.list(filters={"label": label}):
            if image.id in before:
                continue
            for tag in image.tags:
                if not tag.startswith((f"{registry.host}/", "conveyor-parent:")):
                    continue
                try:
                    docker_daemon.images.remove(tag)
                except docker.errors.APIError:
                    pass


def _untagged_conveyor_images(client: Any, registry_host: str) -> set[str]:
    # Other test sessions may share the daemon: only images of this session's registry (or none) count.
    return {
        i.id
        for label in ("conveyor.image", "conveyor.parent")
        for i in client.images.list(filters={"dangling": True, "label": label})
        if all(d.startswith(registry_host + "/") for d in i.attrs.get("RepoDigests") or [])
    }


@pytest.fixture
def no_leftovers(repo: Path, docker_daemon: Any, registry: Any) -> Iterator[None]:
    """Fail a test that leaves step containers or untagged conveyor images behind."""
    before = _untagged_conveyor_images(docker_daemon, registry.host)
    yield
    # Other test sessions may share the daemon: only this test's runs count.
    from conveyor import Client

    runs = {r.id for r in Client().list_runs()}
    left = [
        c
        for c in docker_daemon.containers.list(all=True, filters={"label": "conveyor.run"})
        if c.labels.get("conveyor.run") in runs
    ]
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
    dangling = _untagged_conveyor_images(docker_daemon, registry.host) - before
    assert not dangling, f"untagged conveyor images left behind: {dangling}"


@pytest.fixture
def docker_stack(
    repo: Path, registry: Any, base_image: str, wheel_cache: Path, session_images: None, no_leftovers: None
) -> str:
    """A ``local_docker`` stack in the test's repository (SQLite and local artifacts, mounted)."""
    return register_docker_stack(f"{registry.host}/ml", base_image, wheel_cache)
