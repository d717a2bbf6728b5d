"""Building, reusing and pushing images for real: Docker daemon, v2 registry, base image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import write_module

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PIPELINE = """
from conveyor import pipeline, step
{extra_import}

@step
def make(n: int) -> int:
    return n * {factor}


@step
def show(value: int) -> str:
    return f"value={{value}}"


@pipeline(name="imgtest", settings={settings})
def imgtest(n: int = 2) -> None:
    show(make(n))
"""


def _write_pipeline(folder: Path, *, factor: int = 3, settings: str = "{}", extra_import: str = "") -> Any:
    import importlib

    write_module(
        folder, "imgtest_pipeline", PIPELINE.format(factor=factor, settings=settings, extra_import=extra_import)
    )
    return importlib.import_module("imgtest_pipeline").imgtest


def _deployment(pipe: Any, stack_name: str, **params: Any) -> tuple[Any, Any, Any]:
    from conveyor import Client, deployment_for
    from conveyor.orchestrators import LaunchContext

    deployment, stack, source_root = deployment_for(pipe, stack=stack_name, parameters=params)
    ctx = LaunchContext(store=Client().store, stack=stack, source_root=source_root)
    return deployment, ctx, stack.component("image_builder")


def _run(client: Any, image: str, *argv: str) -> str:
    return client.containers.run(image, list(argv), entrypoint=[], network_mode="none", remove=True).decode()


def test_build_pushes_an_image_whose_digest_the_registry_serves(docker_stack, registry, docker_daemon, repo):
    pipe = _write_pipeline(repo)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    images = builder.build_images(deployment, ctx)

    assert list(images) == [""]
    ref = images[""]
    repository, digest = ref.split("@")
    assert repository == f"{registry.host}/ml/conveyor-imgtest"
    tag = builder.builds[-1].name.rsplit(":", 1)[1]
    assert builder.builds[-1].action == "built"
    served, manifest = registry.manifest("ml/conveyor-imgtest", tag)
    assert served == digest
    assert manifest["schemaVersion"] == 2
    assert tag in registry.tags("ml/conveyor-imgtest")

    # conveyor is installed from wheels (not a path into this checkout), the code is in /app.
    out = _run(
        docker_daemon,
        ref,
        "python",
        "-c",
        "import conveyor, conveyor_docker, os, json; "
        "print(json.dumps([conveyor.__file__, sorted(os.listdir('/app')), os.environ['CONVEYOR_SOURCE_ROOT']]))",
    )
    conveyor_file, app_files, source_root = json.loads(out.strip().splitlines()[-1])
    assert conveyor_file.startswith("/opt/venv/lib/python3.11/site-packages/conveyor/")
    assert "imgtest_pipeline.py" in app_files
    assert ".conveyor" not in app_files  # the repository's database and artifacts stay here
    assert source_root == "/app"


def test_unchanged_pipeline_reuses_its_image_without_building(docker_stack, docker_daemon, repo):
    pipe = _write_pipeline(repo)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    first = builder.build_images(deployment, ctx)
    ours = {"label": "conveyor.pipeline=imgtest"}
    images_before = {i.id for i in docker_daemon.images.list(filters=ours)}

    again = builder.build_images(deployment, ctx)

    assert again == first
    assert builder.builds[-1].action == "reused"
    assert {i.id for i in docker_daemon.images.list(filters=ours)} == images_before


def test_code_change_rebuilds_only_the_last_layer(docker_stack, docker_daemon, repo):
    pipe = _write_pipeline(repo, factor=3)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    old = builder.build_images(deployment, ctx)[""]

    pipe = _write_pipeline(repo, factor=4)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    new = builder.build_images(deployment, ctx)[""]

    assert new != old
    old_layers = docker_daemon.images.get(old).attrs["RootFS"]["Layers"]
    new_layers = docker_daemon.images.get(new).attrs["RootFS"]["Layers"]
    assert len(new_layers) == len(old_layers)
    assert new_layers[:-1] == old_layers[:-1]
    assert new_layers[-1] != old_layers[-1]
    assert "* 4" in _run(docker_daemon, new, "cat", "/app/imgtest_pipeline.py")


def test_dockerignore_keeps_files_out_of_the_image(docker_stack, docker_daemon, repo):
    (repo / ".dockerignore").write_text("# local only\nsecret.txt\ndata/\n")
    (repo / "secret.txt").write_text("do not ship")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"x" * 1000)
    (repo / "helpers").mkdir()
    (repo / "helpers" / "util.py").write_text("X = 1\n")
    pipe = _write_pipeline(repo)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    ref = builder.build_images(deployment, ctx)[""]

    listing = _run(docker_daemon, ref, "sh", "-c", "cd /app && find . -type f | sort").split()
    assert "./helpers/util.py" in listing
    assert "./imgtest_pipeline.py" in listing
    assert not [p for p in listing if p.startswith(("./secret.txt", "./data/", "./.conveyor/"))]


def test_settings_requirements_environment_and_extra_files(docker_stack, docker_daemon, repo):
    (repo / "config.json").write_text('{"k": 1}')
    settings = (
        '{"docker": {"requirements": ["pymysql"], "environment": {"MODE": "boxed"}, '
        '"extra_files": {"config.json": "/etc/conveyor-test/config.json"}}}'
    )
    pipe = _write_pipeline(repo, settings=settings)
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    ref = builder.build_images(deployment, ctx)[""]

    out = _run(
        docker_daemon,
        ref,
        "python",
        "-c",
        "import pymysql, os; print(os.environ['MODE'], open('/etc/conveyor-test/config.json').read())",
    )
    assert out.split() == ["boxed", '{"k":', "1}"]


MIXED = """
from conveyor import pipeline, step
from conveyor_docker import DockerSettings


@step
def make(n: int) -> int:
    return n * 3


@step(settings={"docker": DockerSettings(environment={"ONLY_SHOW": "1"})})
def show(value: int) -> str:
    return f"value={value}"


@pipeline(name="imgtest")
def mixed(n: int = 2) -> None:
    show(make(n))
"""


def test_a_step_with_its_own_settings_gets_its_own_image(docker_stack, docker_daemon, repo):
    import importlib

    write_module(repo, "imgtest_mixed", MIXED)
    pipe = importlib.import_module("imgtest_mixed").mixed
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    images = builder.build_images(deployment, ctx)

    assert set(images) == {"", "show"}
    assert images[""] != images["show"]
    env = "import os; print(os.environ.get('ONLY_SHOW', '-'))"
    assert _run(docker_daemon, images["show"], "python", "-c", env).strip() == "1"
    assert _run(docker_daemon, images[""], "python", "-c", env).strip() == "-"
    assert deployment.model_copy(update={"images": images}).image_for("make") == images[""]


def test_user_dockerfile_becomes_the_parent(docker_stack, docker_daemon, base_image, repo):
    (repo / "docker").mkdir()
    (repo / "docker" / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo from-user-dockerfile > /marker\n")
    pipe = _write_pipeline(repo, settings='{"docker": {"dockerfile": "docker/Dockerfile"}}')
    deployment, ctx, builder = _deployment(pipe, docker_stack)
    ref = builder.build_images(deployment, ctx)[""]

    assert _run(docker_daemon, ref, "cat", "/marker").strip() == "from-user-dockerfile"
    assert docker_daemon.images.list(filters={"label": "conveyor.parent"})
