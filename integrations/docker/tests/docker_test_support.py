"""Helpers shared by conveyor-docker's tests (a module name unique across the repository's test suites)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a module of user code and make sure a fresh import sees it."""
    path = folder / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)
    os.utime(path)
    return path


def register_docker_stack(
    registry_uri: str,
    base_image: str,
    cache: Path,
    *,
    name: str = "boxed",
    artifact_store: str = "default",
    step_operator: bool = False,
    orchestrator: str = "local_docker",
) -> str:
    """Register the image builder, registry and orchestrator of a container stack; returns its name."""
    from conveyor import Client

    client = Client()
    existing = {(c.type, c.name) for c in client.store.list_components()}
    if ("image_builder", "local_docker") not in existing:
        client.register_component(
            "image_builder", "local_docker", "docker", {"parent_image": base_image, "cache_dir": str(cache)}
        )
    if ("container_registry", "reg") not in existing:
        client.register_component("container_registry", "reg", "default", {"uri": registry_uri})
    if ("orchestrator", "in_docker") not in existing:
        client.register_component("orchestrator", "in_docker", "local_docker", {})
    components = {
        "orchestrator": "in_docker" if orchestrator == "local_docker" else orchestrator,
        "artifact_store": artifact_store,
        "image_builder": "local_docker",
        "container_registry": "reg",
    }
    if step_operator:
        if ("step_operator", "docker") not in existing:
            client.register_component("step_operator", "docker", "docker", {})
        components["step_operator"] = "docker"
    client.register_stack(name, components)
    return name


def step_logs(step: object) -> str:
    """The logs of a step run view."""
    logs = step.logs  # type: ignore[attr-defined]
    return logs() if callable(logs) else logs
