"""The airflow orchestrator on a real conveyor repository: export, run without an API, bad input."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import airflow_test_pipelines as tp
import pytest

from conveyor import Client, export_pipeline
from conveyor.exceptions import CapabilityError, ConfigError, StackError
from conveyor_airflow._orchestrator import existing_pipeline


def register(**config: Any) -> None:
    client = Client()
    client.register_component("orchestrator", "af", "airflow", config)
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default"})


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_writes_one_dag_file_for_the_stored_deployment(repo: Path) -> None:
    register()
    out = repo / "dags"
    paths = export_pipeline(tp.golden, out, stack="on_airflow", parameters={"n": 3})
    assert paths == [out / "golden.py"] and files(out) == ["golden.py"]
    source = paths[0].read_text()
    store = Client().store
    deployment_id = source.split("CONVEYOR_DEPLOYMENT = '")[1].split("'")[0]
    assert '"n":3' in store.get_deployment_json(deployment_id)  # the parameters live in the store, not the file
    assert f"'CONVEYOR_PYTHON': {sys.executable!r}" in source
    assert f"'CONVEYOR_SOURCE_ROOT': {str(Path(tp.__file__).parent)!r}" in source
    assert f"'CONVEYOR_STORE_URL': 'sqlite:///{repo}/.conveyor/conveyor.db'" in source
    assert export_pipeline(tp.golden, out, stack="on_airflow", parameters={"n": 3}) == paths
    assert paths[0].read_text() == source  # same pipeline, same bytes


def test_export_to_a_file_name(repo: Path) -> None:
    register()
    [path] = export_pipeline(tp.golden, repo / "out" / "my_dag.py", stack="on_airflow")
    assert path == repo / "out" / "my_dag.py" and existing_pipeline(path) == "golden"


def test_running_without_an_api_writes_into_the_dags_folder(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dags = repo / "airflow" / "dags"
    dags.mkdir(parents=True)
    register(
        dags_folder=str(dags), python="/usr/bin/python3", store_url="postgresql+psycopg://conveyor@db.example/conveyor"
    )
    assert tp.golden.with_options(stack="on_airflow")(n=4) is None
    assert files(dags) == ["golden.py"]
    source = (dags / "golden.py").read_text()
    assert "'CONVEYOR_PYTHON': '/usr/bin/python3'" in source
    assert "'CONVEYOR_STORE_URL': 'postgresql+psycopg://conveyor@db.example/conveyor'" in source
    err = capsys.readouterr().err
    assert f"wrote DAG 'golden' to {dags / 'golden.py'}" in err and "airflow dags trigger golden" in err


def test_the_store_password_never_reaches_the_dag(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext

    register(dags_folder=str(tmp_path))
    stack = Client().repository.stack("on_airflow")

    class MySQLStore:  # only its URL is read; no server is needed to compile
        url = sa.make_url("mysql+pymysql://conveyor:s3cret@127.0.0.1:3306/conveyor")

    ctx = LaunchContext(store=MySQLStore(), stack=stack)  # type: ignore[arg-type]
    compiled = stack.orchestrator.compile(Deployment(pipeline=tp.golden.trace(), stack=stack.ir), ctx)
    assert "s3cret" not in compiled.source
    assert "'CONVEYOR_STORE_URL': 'mysql+pymysql://conveyor@127.0.0.1:3306/conveyor'" in compiled.source
    assert "without its password" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({}, "has no dags folder"),
        ({"dags_folder": "/nonexistent/dags"}, "does not exist"),
        ({"dags_folder": "/proc/sys"}, "is not writable"),
    ],
)
def test_a_missing_or_read_only_dags_folder_is_one_line(repo: Path, config: dict[str, str], words: str) -> None:
    register(**config)
    with pytest.raises(ConfigError) as info:
        tp.golden.with_options(stack="on_airflow")()
    assert words in str(info.value) and "\n" not in str(info.value)
    assert Client().store.list_pipelines() == []  # failed before storing anything


def test_a_capability_error_writes_nothing(repo: Path) -> None:
    dags = repo / "dags"
    dags.mkdir()
    register(dags_folder=str(dags))
    with pytest.raises(CapabilityError, match="cpu/memory"):
        tp.containers.with_options(stack="on_airflow")()
    assert files(dags) == []
    assert Client().store.list_pipelines() == []  # not even the deployment was stored


def test_names_that_collide_as_a_dag_id_are_refused(repo: Path) -> None:
    first, second = tp.spaced, tp.underscored
    register()
    out = repo / "dags"
    [path] = export_pipeline(first, out, stack="on_airflow")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        export_pipeline(second, out, stack="on_airflow")
    assert str(info.value).startswith("pipelines 'my pipeline' and 'my_pipeline' are both DAG 'my_pipeline'")
    assert path.read_bytes() == before and files(out) == ["my_pipeline.py"]
    other = export_pipeline(
        second.with_options(settings={"airflow": {"dag_id": "my_pipeline_2"}}), out, stack="on_airflow"
    )
    assert other == [out / "my_pipeline_2.py"]


def test_a_file_conveyor_did_not_write_is_left_alone(repo: Path) -> None:
    register()
    out = repo / "dags"
    out.mkdir()
    (out / "golden.py").write_text("# the team's own DAG\n")
    with pytest.raises(ConfigError, match="was not written by conveyor"):
        export_pipeline(tp.golden, out, stack="on_airflow")
    assert (out / "golden.py").read_text() == "# the team's own DAG\n"


def test_a_failed_write_leaves_no_partial_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register()
    out = repo / "dags"
    out.mkdir()

    def full_disk(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ConfigError, match="No space left on device"):
        export_pipeline(tp.golden, out, stack="on_airflow")
    assert files(out) == []


def test_an_unreachable_api_is_one_line_and_writes_nothing(repo: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dags = repo / "dags"
    dags.mkdir()
    register(dags_folder=str(dags), api_url=f"http://127.0.0.1:{port}", api_timeout=5)
    with pytest.raises(StackError) as info:
        tp.golden.with_options(stack="on_airflow")()
    assert str(info.value).startswith(f"cannot reach the Airflow API at http://127.0.0.1:{port}")
    assert "\n" not in str(info.value)
    assert files(dags) == []


def test_the_api_password_must_be_a_secret_reference(repo: Path) -> None:
    with pytest.raises(ConfigError, match="api_password: holds a credential, so it takes only a secret reference"):
        Client().register_component("orchestrator", "af", "airflow", {"api_password": "hunter2"})
    Client().register_component("orchestrator", "af", "airflow", {"api_password": "{{airflow_api.password}}"})


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"operator": "ssh"}, "operator"),
        ({"docker_mounts": ["/only-one-side"]}, "HOST_PATH:CONTAINER_PATH"),
        ({"dag_folder": "/x"}, "unknown option 'dag_folder'"),
    ],
)
def test_bad_orchestrator_configs_are_refused_at_registration(repo: Path, config: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Client().register_component("orchestrator", "af", "airflow", config)


def test_docker_mode_mounts_the_stores_of_this_machine(repo: Path) -> None:
    register(operator="docker", image="conveyor-python:bookworm")
    [path] = export_pipeline(tp.golden, repo / "dags", stack="on_airflow")
    source = path.read_text()
    # The SQLite file and the default artifact store both live in .conveyor/: one mount.
    conveyor_dir = repo / ".conveyor"
    assert (
        f"MOUNTS = [Mount(source={str(conveyor_dir)!r}, target={str(conveyor_dir)!r}, type='bind', read_only=False)]"
        in source
    )
    assert "network_mode='host'" in source and "CONVEYOR_SOURCE_ROOT" not in source
