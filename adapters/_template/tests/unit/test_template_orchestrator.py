"""The template orchestrator without running a pipeline: its entry point, its config, exporting a script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor_template
from conveyor import Client, Schedule, export_pipeline
from conveyor.exceptions import CapabilityError, ConfigError
from conveyor.stack import flavors
from conveyor_template import TemplateOrchestratorFlavor
from conveyor_testing import assert_facade_complete
from conveyor_testing.conformance import case, load_pipeline


def register(config: dict[str, object] | None = None) -> str:
    client = Client()
    client.register_component("orchestrator", "sh", "template", config or {})
    client.register_stack("on_template", {"orchestrator": "sh", "artifact_store": "default"})
    return "on_template"


def test_the_package_face_is_complete() -> None:
    assert_facade_complete(conveyor_template)


def test_the_flavor_is_found_through_its_entry_point() -> None:
    assert "orchestrator.template" in flavors.names("orchestrator")
    assert isinstance(flavors.get("orchestrator", "template"), TemplateOrchestratorFlavor)


def test_finding_the_flavor_does_not_import_the_orchestrator() -> None:
    # The entry point's module stays light: what runs pipelines (and an engine's SDK) loads on use.
    script = (
        "import sys\n"
        "from conveyor.stack import flavors\n"
        "flavors.get('orchestrator', 'template')\n"
        "assert 'conveyor_template._orchestrator' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_unknown_options_are_one_line_errors(repo: Path) -> None:
    with pytest.raises(ConfigError, match="max_workers") as info:
        Client().register_component("orchestrator", "sh", "template", {"max_workers": 3})
    assert "\n" not in str(info.value)


def test_a_store_url_with_a_password_is_refused_when_registering(repo: Path) -> None:
    with pytest.raises(ConfigError, match="password") as info:
        Client().register_component("orchestrator", "sh", "template", {"store_url": "postgresql://u:hunter2@db/c"})
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


def test_export_writes_an_executable_script_named_after_the_pipeline(repo: Path, tmp_path: Path) -> None:
    stack = register({"python": "/opt/py/bin/python"})
    pipe = load_pipeline(case("quickstart"))
    [path] = export_pipeline(pipe, tmp_path / "out", stack=stack)
    assert path == tmp_path / "out" / "quickstart.sh"
    assert os.access(path, os.X_OK)
    text = path.read_text()
    assert (
        text.startswith("#!/usr/bin/env bash\n")
        and "\n  if attempt 0 0.0 /opt/py/bin/python -m conveyor.runtime run-step" in text
    )
    [again] = export_pipeline(pipe, tmp_path / "mine.sh", stack=stack)
    assert again == tmp_path / "mine.sh" and again.read_text() == text


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"steps": {"load_data": {"timeout": 60}}}, "timeout"),
        ({"steps": {"load_data": {"resources": {"cpu": 2}}}}, "cpu/memory"),
    ],
)
def test_what_a_script_cannot_honour_fails_when_compiling(
    repo: Path, tmp_path: Path, options: dict, match: str
) -> None:
    stack = register()
    with pytest.raises(CapabilityError, match=match) as info:
        export_pipeline(load_pipeline(case("quickstart")).with_options(**options), tmp_path / "out", stack=stack)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_schedule_is_refused_when_compiling(repo: Path, tmp_path: Path) -> None:
    stack = register()
    pipe = load_pipeline(case("quickstart")).with_options(schedule=Schedule(cron="0 6 * * *"))
    with pytest.raises(CapabilityError, match="schedule") as info:
        export_pipeline(pipe, tmp_path, stack=stack)
    assert "\n" not in str(info.value)
