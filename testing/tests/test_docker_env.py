"""The real Docker environment: daemon, base image, build, push, registry API."""

from __future__ import annotations

import io
import uuid

import pytest

from conveyor_testing.docker_env import MANIFEST_ACCEPT

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_daemon_answers(docker_daemon):
    assert docker_daemon.ping() is True
    assert docker_daemon.version()["ApiVersion"]


def test_base_image_runs_python_with_host_network(docker_daemon, base_image):
    out = docker_daemon.containers.run(
        base_image,
        [
            "python",
            "-c",
            "import sys; print(sys.prefix); print(sys.version_info[:2] >= (3, 11))",
        ],
        network_mode="host",
        remove=True,
    )
    assert out.decode().split() == ["/opt/venv", "True"]

    pip = docker_daemon.containers.run(
        base_image,
        ["python", "-m", "pip", "--version"],
        network_mode="host",
        remove=True,
    )
    assert b"/opt/venv/" in pip


def test_build_from_base_push_and_read_manifest(docker_daemon, registry, base_image):
    from docker.errors import ImageNotFound

    token = uuid.uuid4().hex[:12]
    local_tag = f"conveyor-test-x:{token}"
    repo = f"{registry.host}/test/x"
    made_tags = [local_tag]
    # A unique layer, so every run builds and pushes something new.
    dockerfile = f"FROM {base_image}\nRUN echo {token} > /marker\n".encode()
    try:
        image, _logs = docker_daemon.images.build(
            fileobj=io.BytesIO(dockerfile),
            tag=local_tag,
            network_mode="host",
            rm=True,
            forcerm=True,
        )
        assert image.tag(repo, "tag")
        made_tags.append(f"{repo}:tag")

        events = list(docker_daemon.images.push(repo, tag="tag", stream=True, decode=True))
        errors = [e for e in events if "error" in e or "errorDetail" in e]
        assert not errors, errors
        pushed = [e["aux"]["Digest"] for e in events if "Digest" in e.get("aux", {})]
        assert len(pushed) == 1, events

        digest, manifest = registry.manifest("test/x", "tag")
        assert digest == pushed[0]
        assert manifest["schemaVersion"] == 2
        assert len(manifest["layers"]) >= 2  # the imported root fs and ours
        assert "tag" in registry.tags("test/x")

        # The raw API too, with the Accept header a v2 client sends.
        status, headers, _ = registry.get("/v2/test/x/manifests/tag", MANIFEST_ACCEPT)
        assert status == 200
        assert headers["Content-Type"] in MANIFEST_ACCEPT
        assert registry.get("/v2/test/x/manifests/missing", MANIFEST_ACCEPT)[0] == 404

        # The daemon sees the pushed digest as the image's repo digest.
        assert f"{repo}@{pushed[0]}" in docker_daemon.images.get(local_tag).attrs["RepoDigests"]
    finally:
        for tag in reversed(made_tags):
            try:
                docker_daemon.images.remove(tag)
            except ImageNotFound:
                pass
    assert not [t for t in made_tags if _has_image(docker_daemon, t)]


def _has_image(client, name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(name)
        return True
    except ImageNotFound:
        return False
