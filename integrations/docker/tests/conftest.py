"""Fixtures of conveyor-docker's tests: stacks that run in containers (``repo`` comes from conveyor_testing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack


# -- Docker ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def session_images(docker_daemon: Any, registry: Any) -> Iterator[None]:
    """Remove the images the session's builds made (tagged with the conveyor labels).

    Other sessions may share the daemon and build the same images for their own registries: only this
    session's registry's tags (and the user parent images it built) are removed.
    """
    import docker

    # Summaries from one listing call: images.list() inspects each image after listing, and another
    # session may remove one in between.
    before = set(docker_daemon.api.images(all=True, quiet=True))
    yield
    for label in ("conveyor.image", "conveyor.parent"):
        for summary in docker_daemon.api.images(filters={"label": label}):
            if summary["Id"] in before:
                continue
            for tag in summary.get("RepoTags") or []:
                if not tag.startswith((f"{registry.host}/", "conveyor-parent:")):
                    continue
                try:
                    docker_daemon.images.remove(tag)
                except docker.errors.APIError:
                    pass


def _untagged_conveyor_images(client: Any, registry: Any) -> set[str]:
    """Untagged images the conveyor labels mark that this session made.

    Other test sessions may share the daemon, build images for their own registries and remove them,
    which leaves their never-pushed intermediate images (the ``LABEL`` steps of a build) untagged:
    an image pushed elsewhere does not count, nor one without a digest unless it is a user parent
    image or its ``conveyor.image`` tag was pushed to this session's registry.
    """
    pushed: set[str] | None = None
    out = set()
    for label in ("conveyor.image", "conveyor.parent"):
        for i in client.api.images(filters={"dangling": True, "label": label}):
            digests = i.get("RepoDigests") or []
            labels = i.get("Labels") or {}
            if digests:
                if all(d.startswith(registry.host + "/") for d in digests):
                    out.add(i["Id"])
                continue
            if "conveyor.image" not in labels:
                if "conveyor.pipeline" not in labels:
                    out.add(i["Id"])  # a user parent image (conveyor-parent:TAG), never pushed
                continue
            if pushed is None:
                pushed = _pushed_tags(registry)
            if labels["conveyor.image"] in pushed:
                out.add(i["Id"])
    return out


def _pushed_tags(registry: Any) -> set[str]:
    status, _, body = registry.get("/v2/_catalog")
    repositories = (json.loads(body).get("repositories") or []) if status == 200 else []
    return {tag for repo in repositories for tag in registry.tags(repo)}


@pytest.fixture
def no_leftovers(repo: Path, docker_daemon: Any, registry: Any) -> Iterator[None]:
    """Fail a test that leaves step containers or untagged conveyor images behind."""
    before = _untagged_conveyor_images(docker_daemon, registry)
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
    dangling = _untagged_conveyor_images(docker_daemon, registry) - before
    assert not dangling, f"untagged conveyor images left behind: {dangling}"


@pytest.fixture
def docker_stack(
    repo: Path, registry: Any, base_image: str, wheel_cache: Path, session_images: None, no_leftovers: None
) -> str:
    """A ``local_docker`` stack in the test's repository (SQLite and local artifacts, mounted)."""
    return register_docker_stack(f"{registry.host}/ml", base_image, wheel_cache)
