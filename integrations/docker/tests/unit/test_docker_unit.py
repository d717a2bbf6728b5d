"""conveyor-docker without a Docker daemon: settings, plans, wheels, flavors, errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
import sqlalchemy as sa
from docker_test_support import register_docker_stack, write_module

import conveyor_docker
from conveyor.exceptions import ConfigError, StackError
from conveyor_docker import DockerSettings
from conveyor_docker._client import BuildFailedError, EventLog
from conveyor_docker._containers import _memory, store_mounts
from conveyor_docker._context import ImagePlan
from conveyor_docker._requirements import Resolver, store_requirements
from conveyor_docker._settings import settings_for
from conveyor_docker._wheels import WheelCache


def test_public_names_are_exported_and_sorted():
    names = [n for n in dir(conveyor_docker) if not n.startswith("_") and n[0].isupper()]
    assert set(names) <= set(conveyor_docker.__all__)
    assert conveyor_docker.__all__ == sorted(conveyor_docker.__all__)


def test_flavors_come_through_entry_points_without_importing_docker():
    code = (
        "import sys; from conveyor.stack import flavors; "
        "[flavors.get(*k.split('.')) for k in ('image_builder.docker', 'container_registry.default', "
        "'orchestrator.local_docker', 'step_operator.docker')]; "
        "print('docker' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_password_must_be_a_secret_reference():
    from conveyor.stack import flavors

    flavor = flavors.get("container_registry", "default")
    assert (
        flavor.validate_config(
            {"uri": "127.0.0.1:5000/ml", "username": "me", "password": "{{reg.password}}"}, component="reg"
        )["password"]
        == "{{reg.password}}"
    )
    with pytest.raises(ConfigError, match="password: holds a credential, so it takes only a secret reference"):
        flavor.validate_config({"uri": "127.0.0.1:5000/ml", "password": "hunter2"}, component="reg")
    with pytest.raises(ConfigError, match="host\\[:port\\]"):
        flavor.validate_config({"uri": "http://127.0.0.1:5000/ml"}, component="reg")


PIPE = """
from conveyor import pipeline, step
from conveyor_docker import DockerSettings


@step
def a() -> int:
    return 1


@step(settings={"docker": {"environment": {"B": "1"}}})
def b(x: int) -> int:
    return x


@pipeline(name="settings_pipe", settings={"docker": DockerSettings(apt_packages=["curl"], requirements=["pymysql"])})
def settings_pipe() -> None:
    b(a())
"""


def test_step_settings_merge_over_the_pipelines(repo):
    write_module(repo, "settings_pipe", PIPE)
    ir = importlib.import_module("settings_pipe").settings_pipe.trace()
    base = settings_for(ir)
    assert base.apt_packages == ["curl"]
    assert settings_for(ir, ir.step("a")) == base
    own = settings_for(ir, ir.step("b"))
    assert own.environment == {"B": "1"} and own.apt_packages == ["curl"]


def test_yaml_run_config_sets_docker_settings_and_unknown_keys_fail(repo):
    write_module(repo, "settings_pipe", PIPE)
    pipe = importlib.import_module("settings_pipe").settings_pipe
    (repo / "run.yaml").write_text("settings:\n  docker:\n    parent_image: custom:1\n")
    ir = pipe.with_options(config_path=repo / "run.yaml").trace()
    assert settings_for(ir).parent_image == "custom:1"
    (repo / "bad.yaml").write_text("settings:\n  docker:\n    parent_imag: custom:1\n")
    ir = pipe.with_options(config_path=repo / "bad.yaml").trace()
    with pytest.raises(ConfigError, match="unknown key 'parent_imag'"):
        settings_for(ir)


def test_resolver_pins_installed_versions_and_leaves_the_rest_to_pip():
    from packaging.requirements import Requirement

    resolver = Resolver()
    resolver.add_conveyor("conveyor")
    resolver.add(Requirement("pymysql"))
    resolver.add(Requirement("conveyor-no-such-package>=1"), original="conveyor-no-such-package>=1")
    assert "conveyor" in resolver.conveyor
    assert resolver.pinned["pydantic"].version == distribution("pydantic").version
    assert "pymysql" in resolver.pinned
    assert resolver.unresolved == ["conveyor-no-such-package>=1"]


def test_requirement_markers_are_read_for_the_python_of_the_image(tmp_path, monkeypatch):
    import importlib

    from packaging.requirements import Requirement

    info = tmp_path / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n"
        'Requires-Dist: old-python-only>=1; python_full_version < "3.11.3"\n'
        'Requires-Dist: pydantic; python_version >= "3.8"\n'
        'Requires-Dist: windows-only; sys_platform == "win32"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for version, wanted in (((3, 11, 2), ["old-python-only>=1"]), ((3, 11, 7), [])):
        resolver = Resolver(python_version=version)
        resolver.add(Requirement("fakepkg"))
        resolver.add(Requirement('never-here; python_version < "3.0"'))
        assert "fakepkg" in resolver.pinned and "pydantic" in resolver.pinned
        assert resolver.unresolved == wanted, version


def test_store_requirements_follow_the_store_urls():
    assert store_requirements(sa.make_url("sqlite:////tmp/x.db"), "/tmp/artifacts") == []
    assert [n.lower() for n in store_requirements(sa.make_url("mysql+pymysql://u@h/db"), "/a")] == ["pymysql"]
    pg = store_requirements(sa.make_url("postgresql+psycopg://u@h/db"), "s3://bucket/x")
    assert "psycopg" in pg and "psycopg-binary" in pg and "s3fs" in pg


def test_only_local_stores_are_mounted(tmp_path):
    db = tmp_path / ".conveyor" / "conveyor.db"
    arts = tmp_path / ".conveyor" / "artifacts"
    assert store_mounts(sa.make_url(f"sqlite:///{db}"), str(arts)) == [str(db.parent)]
    assert store_mounts(sa.make_url("postgresql+psycopg://u@127.0.0.1/db"), "s3://b/p") == []
    with pytest.raises(StackError, match="in-memory SQLite"):
        store_mounts(sa.make_url("sqlite://"), "s3://b/p")


def _plan(tmp_path: Path, **settings) -> ImagePlan:
    plan = ImagePlan(
        repository="127.0.0.1:5000/ml/x",
        parent="p",
        parent_id="sha256:abc",
        settings=DockerSettings(**settings),
        pinned={"pydantic": distribution("pydantic")},
        conveyor={"conveyor": distribution("conveyor")},
    )
    plan.code_root = tmp_path
    plan.code_files = [("main.py", tmp_path / "main.py")]
    plan.inputs = {"code": "one"}
    return plan


def test_dockerfile_orders_layers_from_stable_to_changing(tmp_path):
    text = _plan(tmp_path, apt_packages=["git", "curl"], environment={"A": "1"}).dockerfile()
    order = [line.split()[0] + " " + line.split()[1] for line in text.splitlines()]
    assert order[0] == "FROM sha256:abc"
    assert "apt-get install -y --no-install-recommends curl git" in text
    kinds = [line.split()[0] for line in text.splitlines()]
    assert kinds == ["FROM", "RUN", "COPY", "RUN", "COPY", "RUN", "ENV", "COPY", "WORKDIR"]
    assert text.splitlines()[-2] == "COPY app /app"
    assert "--no-index" in text and 'CONVEYOR_SOURCE_ROOT="/app"' in text


def test_tag_is_a_hash_of_the_inputs(tmp_path):
    a, b = _plan(tmp_path), _plan(tmp_path)
    assert a.tag == b.tag and len(a.tag) == 32
    b.inputs = {"code": "two"}
    assert a.tag != b.tag
    assert _plan(tmp_path, environment={"A": "1"}).tag != a.tag


def test_repacked_wheel_installs_offline(tmp_path):
    wheel = WheelCache(tmp_path / "cache").repack(distribution("annotated-types"))
    assert wheel.name.startswith("annotated_types-") and wheel.name.endswith("-py3-none-any.whl")
    assert WheelCache(tmp_path / "cache").repack(distribution("annotated-types")) == wheel  # cached
    target = tmp_path / "target"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", "import annotated_types; print(annotated_types.__file__)"],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith(str(target))


def test_build_errors_end_with_the_log_tail():
    log = EventLog().feed(
        [
            {"stream": "Step 1/2 : FROM x\n"},
            {"stream": " ---> abc\n"},
            {"stream": "boom happened\n"},
            {"error": "The command returned a non-zero code: 3", "errorDetail": {"message": "returned 3"}},
        ]
    )
    err = BuildFailedError("building image x failed: returned 3", "fix it", log_tail=log.tail())
    lines = str(err).splitlines()
    assert lines[0] == "building image x failed: returned 3 (fix it)"
    assert "boom happened" in str(err) and log.error.startswith("The command returned")


def test_memory_strings():
    assert _memory("512Mi") == 512 * 1024**2
    assert _memory("2G") == 2 * 1000**3
    assert _memory("1gb") == 1000**3


def test_no_docker_daemon_says_how_to_start_one(repo, monkeypatch):
    from conveyor_docker import _client

    register_docker_stack("127.0.0.1:1/ml", "conveyor-python:bookworm", repo / "cache")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{repo}/no-daemon.sock")
    monkeypatch.setattr(_client, "_clients", {})
    write_module(repo, "nodaemon_pipe", PIPE.replace("settings_pipe", "nodaemon"))
    pipe = importlib.import_module("nodaemon_pipe").nodaemon.with_options(stack="boxed")
    with pytest.raises(StackError) as err:
        pipe()
    assert err.value.message.startswith(f"cannot reach the Docker daemon at unix://{repo}/no-daemon.sock")
    assert "dockerd" in err.value.hint
