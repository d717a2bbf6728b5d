"""The dagster orchestrator without running Dagster: registering, exporting, writing files, scheduled deployments."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import dagster_test_pipelines as tp
import pytest
from definitions_file import tables

from conveyor import Client, Schedule, deploy_pipeline, export_pipeline
from conveyor.exceptions import ConfigError, StackError
from conveyor.stack import flavors
from conveyor_dagster import DagsterOrchestratorFlavor, prepare_home
from conveyor_testing import assert_facade_complete


def register(options: dict[str, object] | None = None, **components: str) -> str:
    client = Client()
    client.register_component("orchestrator", "dg", "dagster", options or {})
    client.register_stack("on_dagster", {"orchestrator": "dg", "artifact_store": "default", **components})
    return "on_dagster"


def test_the_flavor_is_found_through_its_entry_point() -> None:
    assert "orchestrator.dagster" in flavors.names("orchestrator")
    assert isinstance(flavors.get("orchestrator", "dagster"), DagsterOrchestratorFlavor)


def test_unknown_options_are_one_line_errors(repo: Path) -> None:
    with pytest.raises(ConfigError, match="max_workers") as info:
        Client().register_component("orchestrator", "dg", "dagster", {"max_workers": 3})
    assert "\n" not in str(info.value)


def test_export_writes_one_file_named_after_the_job(repo: Path, tmp_path: Path) -> None:
    stack = register()
    [path] = export_pipeline(tp.renamed, tmp_path / "code", stack=stack)
    t = tables(path.read_text())
    assert path == tmp_path / "code" / f"{t['JOB_NAME']}.py"
    assert t["CONVEYOR_PIPELINE"] == "my pipeline v2.0"
    assert t["PROCESS_ENV"]["CONVEYOR_SOURCE_ROOT"] == str(Path(tp.__file__).parent)
    assert t["COMMANDS"]["python"][0] == sys.executable
    # The deployment the file names is stored: the ops load it from there.
    assert Client().deployment(t["CONVEYOR_DEPLOYMENT"]).pipeline.name == "my pipeline v2.0"
    [again] = export_pipeline(tp.renamed, tmp_path / "one.py", stack=stack)
    assert again == tmp_path / "one.py" and again.read_text() == path.read_text()


def test_a_file_of_another_pipeline_or_of_no_pipeline_is_never_overwritten(repo: Path, tmp_path: Path) -> None:
    stack = register()
    target = tmp_path / "golden.py"
    export_pipeline(tp.golden, target, stack=stack)
    clash = tp.naps.with_options(settings={"dagster": {"job_name": "golden"}})
    with pytest.raises(ConfigError, match="are both Dagster job 'golden'"):
        export_pipeline(clash, tmp_path, stack=stack)
    mine = tmp_path / "naps.py"
    mine.write_text("print('my own code')\n")
    with pytest.raises(ConfigError, match="not written by conveyor"):
        export_pipeline(tp.naps, tmp_path, stack=stack)
    assert mine.read_text() == "print('my own code')\n"


def test_docker_mode_needs_an_image_builder_before_anything_is_stored(repo: Path, tmp_path: Path) -> None:
    stack = register({"mode": "docker"})
    with pytest.raises(StackError, match="no image builder") as info:
        export_pipeline(tp.golden, tmp_path / "code", stack=stack)
    assert "\n" not in str(info.value)
    assert Client().list_pipelines() == []
    assert not (tmp_path / "code").exists()


def test_docker_mode_with_an_image_builds_nothing(repo: Path, tmp_path: Path) -> None:
    image = "127.0.0.1:5000/ml/golden@sha256:" + "cd" * 32
    [path] = export_pipeline(tp.golden, tmp_path, stack=register({"mode": "docker", "image": image}))
    t = tables(path.read_text())
    assert {s["image"] for s in t["STEPS"]} == {image} and t["FINISH"]["image"] == image
    # The SQLite store and the local artifact store are mounted at their own paths.
    mounts = {source for source, target, _ in t["MOUNTS"] if source == target}
    assert str(repo / ".conveyor") in mounts


def test_a_scheduled_deployment_is_written_for_the_daemon_not_run(repo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "code"
    stack = register({"output_folder": str(folder)})
    deployed = deploy_pipeline(tp.naps, stack=stack, schedule=Schedule(interval_seconds=3600))
    assert deployed.status == "deployed" and deployed.where == f"Dagster job 'naps' in {folder / 'naps.py'}"
    # The trigger gives the parameters as the run's config: where a run changes them.
    config = '{"resources":{"conveyor":{"config":{"seconds":4.0}}}}'
    assert deployed.trigger == shlex.join(
        ["dagster", "job", "launch", "-f", str(folder / "naps.py"), "-j", "naps", "--config-json", config]
    )
    t = tables((folder / "naps.py").read_text())
    assert t["SCHEDULE"]["cron"] == "0 * * * *" and t["SCHEDULE"]["status"] == "RUNNING"
    assert Client().list_runs() == []


def test_export_and_deploy_take_a_run_config(repo: Path, tmp_path: Path) -> None:
    """``conveyor pipeline export|deploy -c run.yaml``: its parameters and step settings reach the definitions file."""
    stack = register({"output_folder": str(tmp_path / "deployed")})
    config = tmp_path / "run.yaml"
    config.write_text(
        "parameters: {n: 9, label: cubes}\nsteps:\n  total:\n    settings: {dagster: {pool: small, tags: {team: ml}}}\n"
    )
    conveyor = str(Path(sys.executable).parent / "conveyor")
    ref = f"{tp.__file__}:golden"

    def run(*args: str) -> str:
        done = subprocess.run([conveyor, "pipeline", *args], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    written = run("export", ref, "-s", stack, "-o", str(tmp_path / "code"), "-c", str(config))
    assert written.split() == [str(tmp_path / "code" / "golden.py")]
    said = run("deploy", ref, "-s", stack, "--cron", "0 6 * * *", "-c", str(config))
    deployed = tmp_path / "deployed" / "golden.py"
    assert f"Where: Dagster job 'golden' in {deployed}" in said
    assert "Start a run: dagster job launch -f" in said and '"config":{"label":"cubes","n":9}' in said
    for path in (tmp_path / "code" / "golden.py", deployed):
        t = tables(path.read_text())
        assert t["PARAMETERS"] == {"n": 9, "label": "cubes"}
        [total] = [s for s in t["STEPS"] if s["step"] == "total"]
        assert total["pool"] == "small" and total["tags"] == {"team": "ml", "conveyor/step": "total"}
    assert t["SCHEDULE"]["cron"] == "0 6 * * *"


def test_the_output_folder_defaults_to_the_dagster_home(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    stack = register()
    deploy_pipeline(tp.naps, stack=stack, schedule=Schedule(cron="@daily"))
    assert (repo / ".conveyor" / "dagster" / "conveyor" / "naps.py").is_file()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    deploy_pipeline(tp.naps, stack=stack, schedule=Schedule(cron="@daily"))
    assert (tmp_path / "home" / "conveyor" / "naps.py").is_file()


def test_an_output_folder_that_cannot_be_written_fails_before_anything_is_stored(repo: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    stack = register({"output_folder": str(blocked / "code")})
    with pytest.raises(ConfigError, match="output folder") as info:
        deploy_pipeline(tp.naps, stack=stack, schedule=Schedule(cron="@daily"))
    assert "\n" not in str(info.value)
    assert Client().list_pipelines() == []


def test_a_store_password_never_reaches_the_file(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from conveyor.orchestrators import LaunchContext

    stack_name = register()
    client = Client()
    stack = client.repository.stack(stack_name)
    orchestrator = stack.orchestrator

    class PasswordStore:  # the repository's store, as reached with a password
        url = "postgresql+psycopg://conveyor:s3cr3t-pw@db.example/conveyor"

    from conveyor import deployment_for

    dep, _, root = deployment_for(tp.naps, stack=stack_name)
    ctx = LaunchContext(store=PasswordStore(), stack=stack, source_root=root)  # type: ignore[arg-type]
    source = orchestrator.compile(dep, ctx).source
    assert "s3cr3t-pw" not in source
    assert tables(source)["PROCESS_ENV"]["CONVEYOR_STORE_URL"] == "postgresql+psycopg://conveyor@db.example/conveyor"
    assert "without its password" in capsys.readouterr().err


def test_a_new_dagster_home_gets_telemetry_off_and_an_existing_config_is_kept(tmp_path: Path) -> None:
    prepare_home(tmp_path / "new")
    assert "enabled: false" in (tmp_path / "new" / "dagster.yaml").read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "dagster.yaml").write_text("run_monitoring:\n  enabled: true\n")
    prepare_home(mine)
    assert (mine / "dagster.yaml").read_text() == "run_monitoring:\n  enabled: true\n"


def test_the_package_face_is_complete() -> None:
    import conveyor_dagster

    assert_facade_complete(conveyor_dagster)
