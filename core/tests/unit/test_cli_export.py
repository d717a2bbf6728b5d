"""``conveyor pipeline export`` and ``deploy`` with an orchestrator plugin that compiles to files.

The plugin is installed the way any plugin is: a distribution on the path
with a ``conveyor.flavors`` entry point. Its compiler writes the deployment
as JSON and its scheduler records the schedule, which is all the CLI needs
from an orchestrator; the real engines are tested by their adapters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor_testing.conformance import EXAMPLES

QUICKSTART = f"{EXAMPLES / 'quickstart.py'}:quickstart"

PLUGIN = """
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from conveyor.orchestrators import BaseOrchestrator
from conveyor.stack import Capability, ComponentType, Flavor, StackComponent


class FilesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: str


class FilesOrchestrator(BaseOrchestrator):
    def _export(self, deployment, ctx, output):
        output.mkdir(parents=True, exist_ok=True)
        path = output / f"{deployment.pipeline.name}.json"
        path.write_text(deployment.canonical_json())
        return [path]

    def _run(self, deployment, ctx):
        if deployment.schedule is None:
            # like a remote engine: the run is submitted, its steps start later
            return self.create_run(deployment, ctx, owned=False).id
        record = {"pipeline": deployment.pipeline.name, "parameters": deployment.pipeline.parameters,
                  "schedule": deployment.schedule.model_dump(mode="json") if deployment.schedule else None}
        Path(self.config.folder, "deployed.json").write_text(json.dumps(record))
        return None


class FilesFlavor(Flavor):
    type = ComponentType.ORCHESTRATOR
    name = "files"
    description = "compiles a pipeline to a JSON file"
    capabilities = frozenset({Capability.SCHEDULES, Capability.RETRIES})

    @property
    def config_class(self):
        return FilesConfig

    def implementation(self):
        return FilesOrchestrator


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str


class PlainRegistryFlavor(Flavor):
    type = ComponentType.CONTAINER_REGISTRY
    name = "plain"
    description = "a registry address"

    @property
    def config_class(self):
        return RegistryConfig

    def implementation(self):
        return StackComponent
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A repository with the ``files`` orchestrator plugin installed and a stack ``exp`` using it."""
    repo = tmp_path / "repo"
    (repo / ".conveyor").mkdir(parents=True)
    site = tmp_path / "site"
    dist = site / "conveyor_files-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: conveyor-files\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[conveyor.flavors]\norchestrator.files = conveyor_files:FilesFlavor\n"
        "container_registry.plain = conveyor_files:PlainRegistryFlavor\n"
    )
    (site / "conveyor_files.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.chdir(repo)
    environ = {
        **os.environ,
        "CONVEYOR_REPOSITORY": str(repo),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    for key in ("CONVEYOR_STACK", "CONVEYOR_STORE_URL"):
        environ.pop(key, None)
    ok(environ, "orchestrator", "register", "files", "--flavor", "files", "--folder", str(repo))
    ok(environ, "stack", "register", "exp", "-o", "files", "-a", "default")
    return environ


def conveyor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("conveyor", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert exe is not None, "the conveyor console script is not installed"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def ok(env: dict[str, str], *args: str) -> str:
    proc = conveyor(env, *args)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def test_flavor_list_shows_the_plugin(env: dict[str, str]) -> None:
    flavors = {f["name"]: f for f in json.loads(ok(env, "orchestrator", "flavor", "list", "--json"))}
    assert flavors["files"]["capabilities"] == ["retries", "schedules"]
    assert flavors["files"]["options"] == ["folder"]
    assert flavors["files"]["source"] == "conveyor_files:FilesFlavor"


def test_export_prints_the_files_written(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    printed = ok(env, "pipeline", "export", QUICKSTART, "--stack", "exp", "--output", str(out), "--param", "n=7")
    assert printed.splitlines() == [str(out / "quickstart.json")]
    deployment = json.loads((out / "quickstart.json").read_text())
    assert deployment["pipeline"]["parameters"] == {"n": 7}
    assert deployment["stack"]["name"] == "exp"
    assert [s["id"] for s in deployment["pipeline"]["steps"]] == ["load_data", "split", "total", "total_2"]
    # export runs nothing
    assert json.loads(ok(env, "pipeline", "runs", "--json")) == []


def test_export_by_name_reuses_the_last_deployment(env: dict[str, str], tmp_path: Path) -> None:
    ok(env, "pipeline", "run", QUICKSTART, "-p", "n=3")
    out = tmp_path / "by-name"
    ok(env, "pipeline", "export", "quickstart", "--stack", "exp", "--output", str(out))
    assert json.loads((out / "quickstart.json").read_text())["pipeline"]["parameters"] == {"n": 3}
    changed = conveyor(env, "pipeline", "export", "quickstart", "--stack", "exp", "--output", str(out), "-p", "n=4")
    assert changed.returncode == 1
    (line,) = changed.stderr.strip().splitlines()
    assert line.startswith("conveyor: error: parameters of a pipeline given by name cannot change")


def test_deploy_with_cron_and_start_date(env: dict[str, str], tmp_path: Path) -> None:
    printed = ok(
        env,
        "pipeline",
        "deploy",
        QUICKSTART,
        "--stack",
        "exp",
        "--cron",
        "0 6 * * *",
        "--start-date",
        "2025-01-31T06:00:00",
        "-p",
        "n=2",
    )
    assert printed.strip() == f"Deployed pipeline {QUICKSTART!r} on stack 'exp' (cron '0 6 * * *')."
    deployed = json.loads((tmp_path / "repo" / "deployed.json").read_text())
    assert deployed["parameters"] == {"n": 2}
    assert deployed["schedule"]["cron"] == "0 6 * * *"
    assert deployed["schedule"]["interval_seconds"] is None
    assert deployed["schedule"]["start_date"] in ("2025-01-31T06:00:00Z", "2025-01-31T06:00:00+00:00")


def test_deploy_with_interval(env: dict[str, str], tmp_path: Path) -> None:
    printed = ok(env, "pipeline", "deploy", QUICKSTART, "--stack", "exp", "--interval", "3600")
    assert "(every 3600 s)" in printed
    schedule = json.loads((tmp_path / "repo" / "deployed.json").read_text())["schedule"]
    assert (schedule["cron"], schedule["interval_seconds"]) == (None, 3600)


def test_stack_update_adds_and_removes_an_optional_component(env: dict[str, str]) -> None:
    ok(env, "container-registry", "register", "reg", "--flavor", "plain", "--uri", "localhost:5000")
    ok(env, "stack", "update", "exp", "-c", "reg")
    stack = json.loads(ok(env, "stack", "describe", "exp", "--json"))
    assert stack["components"]["container_registry"]["config"] == {"uri": "localhost:5000"}
    assert "reg (plain)" in ok(env, "stack", "list")
    refused = conveyor(env, "container-registry", "delete", "reg")
    assert refused.returncode == 1 and "used by stack 'exp'" in refused.stderr

    ok(env, "stack", "update", "exp", "--remove-container-registry")
    stack = json.loads(ok(env, "stack", "describe", "exp", "--json"))
    assert set(stack["components"]) == {"orchestrator", "artifact_store"}
    ok(env, "container-registry", "delete", "reg", "-y")
    assert json.loads(ok(env, "container-registry", "list", "--json")) == []


def test_deploy_once_submits_a_run_whose_steps_are_pending(env: dict[str, str]) -> None:
    printed = ok(env, "pipeline", "deploy", QUICKSTART, "--stack", "exp")
    (run,) = json.loads(ok(env, "pipeline", "runs", "--json"))
    assert printed.strip() == f"Submitted run {run['name']} on stack 'exp': running"
    described = json.loads(ok(env, "run", "describe", run["name"], "--json"))
    assert (described["status"], described["orchestrator"], described["stack"]) == ("running", "files", "exp")
    assert [(s["step"], s["status"]) for s in described["steps"]] == [
        ("load_data", "pending"),
        ("split", "pending"),
        ("total", "pending"),
        ("total_2", "pending"),
    ]
    assert "pending" in ok(env, "run", "describe", run["name"])


RUN_CONFIG = """
parameters:
  n: 5
run_name: nightly_{date}
steps:
  total:
    retries: 3
    environment:
      MODE: exported
"""


def test_export_and_deploy_take_a_yaml_run_config(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    out = tmp_path / "compiled"
    ok(env, "pipeline", "export", QUICKSTART, "--stack", "exp", "--output", str(out), "-c", str(config))
    deployment = json.loads((out / "quickstart.json").read_text())
    assert deployment["pipeline"]["parameters"] == {"n": 5}
    assert deployment["run_name"] == "nightly_{date}"
    total = next(s for s in deployment["pipeline"]["steps"] if s["id"] == "total")
    assert total["settings"]["retries"] == 3 and total["settings"]["environment"] == {"MODE": "exported"}

    config.write_text(RUN_CONFIG + "schedule:\n  interval_seconds: 60\n")
    printed = ok(env, "pipeline", "deploy", QUICKSTART, "--stack", "exp", "-c", str(config))
    assert printed.startswith(f"Deployed pipeline {QUICKSTART!r} on stack 'exp'")
    deployed = json.loads((tmp_path / "repo" / "deployed.json").read_text())
    assert deployed["parameters"] == {"n": 5} and deployed["schedule"]["interval_seconds"] == 60


def test_a_config_that_names_an_unknown_step_is_refused_by_export(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("steps:\n  totl:\n    retries: 1\n")
    proc = conveyor(env, "pipeline", "export", QUICKSTART, "-s", "exp", "-o", str(tmp_path / "x"), "-c", str(config))
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "unknown step 'totl'" in line


def test_running_on_an_engine_that_runs_later_returns_what_was_deployed(env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "use_run.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "from conveyor.ir import Schedule\n"
        "from quickstart import quickstart\n"
        "run = quickstart.with_options(stack='exp', schedule=Schedule(interval_seconds=60))(n=2)\n"
        "print(run.status, run.engine, run.pipeline, len(run.deployment_id))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["deployed", "files", "quickstart", "32"]
