"""Bad input against the real daemon and registry: clear one-line errors, nothing left behind."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack, write_module

from conveyor.exceptions import ConfigError, StackError
from conveyor_testing.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PIPELINE = """
from conveyor import pipeline, step


@step
def one() -> int:
    return 1


@pipeline(name="errs", settings={settings})
def errs() -> None:
    one()
"""


def _pipeline(repo: Path, settings: str = "{}", stack: str = "boxed") -> Any:
    write_module(repo, "errs_pipeline", PIPELINE.format(settings=settings))
    return importlib.import_module("errs_pipeline").errs.with_options(stack=stack)


def test_parent_image_missing(docker_stack, repo):
    pipe = _pipeline(repo, '{"docker": {"parent_image": "conveyor-missing-parent:none"}}')
    with pytest.raises(ConfigError) as err:
        pipe()
    assert "parent image 'conveyor-missing-parent:none'" in err.value.message
    assert "cannot be pulled" in err.value.message
    assert "docker pull" in err.value.hint


def test_requirement_that_cannot_be_prepared(docker_stack, repo, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package index: the requirement exists nowhere here
    pipe = _pipeline(repo, '{"docker": {"requirements": ["conveyor-no-such-package==9.9"]}}')
    with pytest.raises(ConfigError) as err:
        pipe()
    assert "conveyor-no-such-package==9.9 cannot be prepared" in err.value.message
    assert "No matching distribution" in str(err.value)  # pip's own words close the message


def test_build_error_shows_the_tail_of_the_build_log_and_leaves_no_layers(
    docker_stack, repo, base_image, docker_daemon
):
    from conveyor_docker._client import BuildFailedError

    (repo / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo step-one > /one\nRUN echo about-to-break && exit 3\n"
    )
    pipe = _pipeline(repo, '{"docker": {"dockerfile": "Dockerfile"}}')
    images_before = {i.id for i in docker_daemon.images.list(all=True)}
    containers_before = {c.id for c in docker_daemon.containers.list(all=True)}
    with pytest.raises(BuildFailedError) as err:
        pipe()
    text = str(err.value)
    assert text.splitlines()[0].startswith("building the Dockerfile")
    assert "returned a non-zero code: 3" in text
    assert "about-to-break" in text  # the build's own output, not a stream of events
    assert len(text.splitlines()) < 40
    made = {i.id for i in docker_daemon.images.list(all=True)} - images_before
    assert not made, "a failed build must not leave layers behind"
    exited = docker_daemon.containers.list(all=True, filters={"ancestor": base_image, "status": "exited"})
    left = {c.id for c in exited} - containers_before
    assert not left, "a failed build must not leave its intermediate containers behind"


def test_registry_unreachable(repo, base_image, wheel_cache, session_images, no_leftovers):
    stack = register_docker_stack(f"127.0.0.1:{free_port()}/ml", base_image, wheel_cache)
    pipe = _pipeline(repo, stack=stack)
    with pytest.raises(StackError) as err:
        pipe()
    assert "container registry 'reg'" in err.value.message
    assert "connection refused" in err.value.message
    assert "conveyor container-registry update reg" in err.value.hint


@pytest.fixture
def readonly_registry(tmp_path: Path) -> Any:
    """A v2 registry in read-only maintenance mode: it serves pulls and refuses pushes."""
    from conveyor_testing.docker_env import start_registry

    server = start_registry(tmp_path / "ro-registry", readonly=True)
    try:
        yield server.registry
    finally:
        server.stop()


def test_registry_refusing_the_push(repo, base_image, wheel_cache, session_images, no_leftovers, readonly_registry):
    from conveyor_docker._client import BuildFailedError

    stack = register_docker_stack(f"{readonly_registry.host}/ml", base_image, wheel_cache)
    pipe = _pipeline(repo, stack=stack)
    with pytest.raises(BuildFailedError) as err:
        pipe()
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"pushing {readonly_registry.host}/ml/conveyor-errs:")
    assert "container registry 'reg' failed" in first
    assert "last lines of docker's log" in str(err.value)
