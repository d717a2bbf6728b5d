"""The leak finder reads Docker images through ``docker save``: layers, config and history."""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor_testing.leaks import DockerImage, find_value

pytestmark = [pytest.mark.integration, pytest.mark.docker]

VALUE = "img-3b9f-uNiQuE-layer-value"


def _context(files: dict[str, str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def build(docker_daemon: Any) -> Iterator[Any]:
    tags: list[str] = []

    def make(files: dict[str, str]) -> str:
        tag = f"conveyor-leak-test:{secrets.token_hex(6)}"
        # FROM scratch: nothing to pull, a few bytes to save.
        docker_daemon.images.build(
            fileobj=_context(files), custom_context=True, tag=tag, network_mode="host", rm=True, forcerm=True
        )
        tags.append(tag)
        return tag

    yield make
    for tag in tags:
        docker_daemon.images.remove(tag, force=True)


def test_finds_a_value_in_a_layer_and_in_the_image_config(build: Any) -> None:
    leaky = build(
        {
            "Dockerfile": f"FROM scratch\nCOPY app.env /app.env\nENV TOKEN={VALUE}\n",
            "app.env": f"TOKEN={VALUE}\n",
        }
    )
    hits = find_value([DockerImage(leaky)], VALUE)
    assert any(h.where.endswith("app.env") for h in hits)  # the layer's file
    assert any(h.where.endswith(".json") for h in hits)  # the config's Env
    assert find_value([f"docker-image:{leaky}"], VALUE) == hits


def test_a_clean_image_has_no_hits(build: Any) -> None:
    clean = build({"Dockerfile": "FROM scratch\nCOPY app.env /app.env\n", "app.env": "TOKEN={{app.token}}\n"})
    assert find_value([DockerImage(clean)], VALUE) == []
    with pytest.raises(RuntimeError, match="docker save conveyor-leak-test:missing failed"):
        find_value([DockerImage("conveyor-leak-test:missing")], VALUE)
