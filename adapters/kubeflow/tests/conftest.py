"""Fixtures of conveyor-kubeflow's tests: a repository per test, and stacks with a kubeflow orchestrator."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

FAKE_IMAGE = "127.0.0.1:5000/ml/conveyor-demo@sha256:" + "ab" * 32


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temp dir, the current folder while the test runs."""
    import conveyor._repository as repository

    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    (tmp_path / ".conveyor").mkdir()
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for store in repository._stores.values():
        store.close()
    repository._stores.clear()


def register_kfp_stack(
    name: str = "on_kfp",
    *,
    artifact_path: str = "s3://conveyor/artifacts",
    artifact_options: dict[str, Any] | None = None,
    builder: str | None = None,
    registry: str | None = None,
    activate: bool = True,
    **config: Any,
) -> str:
    """Register a ``kubeflow`` orchestrator with ``config``, an s3 artifact store and a stack of them.

    ``builder``/``registry`` name a registered image builder and container
    registry; without them the stack gets placeholders that tests never build with.
    """
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", name, "kubeflow", config)
    client.register_component("artifact_store", f"{name}_s3", "s3", {"path": artifact_path, **(artifact_options or {})})
    components = {"orchestrator": name, "artifact_store": f"{name}_s3"}
    if builder is not None:
        components["image_builder"] = builder
    if registry is not None:
        components["container_registry"] = registry
    client.register_stack(name, components)
    if activate:
        client.activate_stack(name)
    return name


def launch_quickstart(action: str, output: Path | None = None, schedule: Any = None) -> Any:
    """Run or export quickstart on the active stack, with its image already pushed (no Docker here)."""
    from conveyor import deployment_for
    from conveyor._repository import Repository
    from conveyor.orchestrators import LaunchContext
    from conveyor_testing.conformance import case, load_pipeline

    pipe = load_pipeline(case("quickstart")).with_options(enable_cache=False)
    deployment, stack, root = deployment_for(pipe, parameters={"n": 20}, schedule=schedule)
    deployment = deployment.model_copy(update={"images": {"": FAKE_IMAGE}})
    ctx = LaunchContext(store=Repository.current().store(), stack=stack, source_root=root)
    if action == "export":
        assert output is not None
        return stack.orchestrator.export(deployment, ctx, output)
    return stack.orchestrator.run(deployment, ctx)


def register_pushed_stack(host: str | None, **config: Any) -> str:
    """A kubeflow stack (with ``config``) whose image builder is never used: tests give images already pushed."""
    from conveyor import Client

    client = Client()
    client.register_component("image_builder", "builder", "docker", {})
    client.register_component("container_registry", "registry", "default", {"uri": "127.0.0.1:5000/ml"})
    options = {"store_url": "postgresql+psycopg://conveyor@db.example:5432/conveyor", "poll_interval": 0.05, **config}
    if host is not None:
        options["host"] = host
    return register_kfp_stack(builder="builder", registry="registry", **options)
