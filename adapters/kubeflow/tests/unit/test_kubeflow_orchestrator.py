"""The orchestrator around the compiler: stores the pods must reach, export files, checks before any build."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kfp_test_support import launch_quickstart, register_pushed_stack

from conveyor.exceptions import CapabilityError, ConfigError


def _export(repo: Path) -> list[dict]:
    [path] = launch_quickstart("export", repo / "out")
    assert path == repo / "out" / "quickstart.yaml"
    return list(yaml.safe_load_all(path.read_text()))


def test_export_writes_the_spec_with_the_store_url_pods_use(repo: Path) -> None:
    register_pushed_stack(None)
    spec = _export(repo)[0]
    env = spec["deploymentSpec"]["executors"]["exec-conveyor-step"]["container"]["env"]
    assert env == [{"name": "CONVEYOR_STORE_URL", "value": "postgresql+psycopg://conveyor@db.example:5432/conveyor"}]


def test_export_to_a_yaml_path_writes_that_file(repo: Path) -> None:
    register_pushed_stack(None)
    [path] = launch_quickstart("export", repo / "specs" / "demo.yaml")
    assert path == repo / "specs" / "demo.yaml" and path.read_text().startswith("# PIPELINE DEFINITION")


def test_store_url_from_a_kubernetes_secret_stays_out_of_the_spec(repo: Path) -> None:
    register_pushed_stack(None, store_url=None, secret_env={"CONVEYOR_STORE_URL": "conveyor-store:url"})
    spec, platform = _export(repo)
    assert "env" not in spec["deploymentSpec"]["executors"]["exec-conveyor-step"]["container"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label in ("exec-conveyor-step", "exec-conveyor-finish-run"):
        assert executors[label]["secretAsEnv"] == [
            {
                "keyToEnv": [{"envVar": "CONVEYOR_STORE_URL", "secretKey": "url"}],
                "optional": False,
                "secretName": "conveyor-store",
                "secretNameParameter": {"runtimeValue": {"constant": "conveyor-store"}},
            }
        ]


def test_sqlite_store_is_refused_before_anything_is_built(repo: Path) -> None:
    register_pushed_stack(None, store_url=None)
    from conveyor import export_pipeline
    from conveyor_testing.conformance import case, load_pipeline

    # No images given: had the check not come first, the Docker image builder would run here.
    with pytest.raises(ConfigError, match=r"SQLite file on this machine \(.*\), which KFP pods cannot reach") as info:
        export_pipeline(load_pipeline(case("quickstart")), repo / "out", parameters={"n": 3})
    assert "\n" not in str(info.value)


def test_local_artifact_store_is_refused(repo: Path) -> None:
    from conveyor import Client

    register_pushed_stack(None)
    client = Client()
    client.register_component("artifact_store", "here", "local", {"path": str(repo / "artifacts")})
    client.register_stack(
        "on_kfp_local",
        {
            "orchestrator": "on_kfp",
            "artifact_store": "here",
            "image_builder": "builder",
            "container_registry": "registry",
        },
    )
    client.activate_stack("on_kfp_local")
    with pytest.raises(ConfigError, match="artifact store 'here' keeps artifacts at .* which KFP pods cannot reach"):
        launch_quickstart("export", repo / "out")


def test_setting_errors_come_before_the_image_build(repo: Path) -> None:
    from conveyor import export_pipeline
    from conveyor_testing.conformance import case, load_pipeline

    register_pushed_stack(None)
    pipe = load_pipeline(case("quickstart")).with_options(steps={"split": {"step_operator": "docker"}})
    with pytest.raises(CapabilityError, match="on KFP every step already runs in its own pod"):
        export_pipeline(pipe, repo / "out", parameters={"n": 3})
