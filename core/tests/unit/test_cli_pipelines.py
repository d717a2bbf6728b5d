"""The ``conveyor`` command line: running pipelines and reading back runs and artifacts."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from conveyor_testing.conformance import EXAMPLES, case, check_run
from tests_support import as_json, fails, init_repository, invoke, ok

QUICKSTART = f"{EXAMPLES / 'quickstart.py'}:quickstart"
RUN_LINE = re.compile(r"^Run (\S+): (\w+) \((\d+) steps, (\d+) cached, ")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh repository of its own, as the working folder."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    init_repository(tmp_path)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_pipeline(*args: str) -> tuple[str, str, int, int]:
    """``conveyor pipeline run ...``; returns (run name, status, steps, cached)."""
    lines = [line for line in ok("pipeline", "run", *args).splitlines() if line.startswith("Run ")]
    match = RUN_LINE.match(lines[-1])
    assert match, lines
    return match[1], match[2], int(match[3]), int(match[4])


def test_run_then_runs_and_describe(repo: Path) -> None:
    from conveyor.client import Client

    name, status, steps, cached = run_pipeline(QUICKSTART, "--param", "n=20")
    assert (status, steps, cached) == ("completed", 4, 0)
    check_run(case("quickstart"), Client().get_run(name))

    runs = as_json("pipeline", "runs")
    assert [(r["name"], r["pipeline"], r["status"], r["parameters"]) for r in runs] == [
        (name, "quickstart", "completed", {"n": 20})
    ]
    assert runs[0]["stack"] == "default" and runs[0]["orchestrator"] == "local"
    assert runs[0]["duration"] >= 0
    table = ok("pipeline", "runs", "quickstart")
    assert name in table and "completed" in table

    described = as_json("run", "describe", name)
    assert described["name"] == name and described["status"] == "completed"
    assert described["parameters"] == {"n": 20}
    assert described["stack"] == "default" and described["orchestrator"] == "local"
    assert "code_commit" in described and "code_dirty" in described
    assert described["started"] and described["ended"]
    steps_by_id = {s["step"]: s for s in described["steps"]}
    assert list(steps_by_id) == ["load_data", "split", "total", "total_2"]
    assert {s["status"] for s in described["steps"]} == {"completed"}
    assert not any(s["cached"] for s in described["steps"])
    assert set(steps_by_id["split"]["outputs"]) == {"even", "odd"}
    assert steps_by_id["split"]["inputs"]["numbers"]["id"] == steps_by_id["load_data"]["outputs"]["numbers"]["id"]
    assert all(s["duration"] is not None for s in described["steps"])

    text = ok("run", "describe", name)
    for label in ("Status:", "Started:", "Ended:", "Parameters:", "Code:", "Stack:", "Orchestrator:"):
        assert label in text
    even_id = steps_by_id["split"]["outputs"]["even"]["id"]
    assert f"even: {even_id[:8]}" in text  # tables show the start of ids

    assert "splitting 20 numbers" in ok("run", "describe", name, "--logs", "split")
    error = fails("run", "describe", name, "--logs", "nope")
    assert "has no step 'nope'" in error and "load_data, split, total, total_2" in error

    # artifact show without a visualization prints the loaded value
    total_id = steps_by_id["total"]["outputs"]["output"]["id"]
    assert ok("artifact", "show", total_id).strip() == "90"


def test_second_run_is_cached_and_runs_are_newest_first(repo: Path) -> None:
    first, *_ = run_pipeline(QUICKSTART, "-p", "n=6")
    second, status, steps, cached = run_pipeline(QUICKSTART, "-p", "n=6")
    assert (status, steps, cached) == ("completed", 4, 4)
    assert [r["name"] for r in as_json("pipeline", "runs")] == [second, first]
    assert [r["name"] for r in as_json("pipeline", "runs", "quickstart", "--limit", "1")] == [second]
    assert all(s["cached"] for s in as_json("run", "describe", second)["steps"])

    pipelines = as_json("pipeline", "list")
    assert [(p["name"], p["runs"], p["last_run"]["name"]) for p in pipelines] == [("quickstart", 2, second)]
    assert "quickstart" in ok("pipeline", "list")


def test_run_config_file_and_stack_option(repo: Path) -> None:
    ok("orchestrator", "register", "procs", "--flavor", "local", "--mode", "process")
    ok("stack", "register", "procs", "-o", "procs", "-a", "default")
    config = repo / "run.yaml"
    config.write_text("run_name: from-cli-{time}\nparameters:\n  n: 4\n")
    name, status, _, _ = run_pipeline(QUICKSTART, "--config", str(config), "--stack", "procs")
    assert name.startswith("from-cli-") and status == "completed"
    described = as_json("run", "describe", name)
    assert described["stack"] == "procs"
    assert described["parameters"] == {"n": 4}
    # the active stack did not change
    assert as_json("stack", "describe")["name"] == "default"


def test_run_by_module_and_by_name_from_the_project_folder(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    _, status, _, _ = run_pipeline("quickstart:quickstart", "-p", "n=3")
    assert status == "completed"
    again, status, _, cached = run_pipeline("quickstart", "-p", "n=3")
    assert (status, cached) == ("completed", 4)
    assert as_json("run", "describe", again)["parameters"] == {"n": 3}


def test_run_by_name_outside_the_project_folder_says_what_to_do(repo: Path) -> None:
    run_pipeline(QUICKSTART)
    before = as_json("pipeline", "runs")
    # A fresh process: this one has imported the quickstart module already.
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "pipeline", "run", "quickstart"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    (error,) = proc.stderr.strip().splitlines()
    assert error.startswith("conveyor: error: pipeline 'quickstart': cannot import 'quickstart'")
    assert "path/to/file.py:name" in error
    assert as_json("pipeline", "runs") == before


def test_failed_run_is_one_line_and_describe_shows_why(repo: Path) -> None:
    error = fails("pipeline", "run", f"{EXAMPLES / 'failing_step.py'}:failing_step")
    assert "step 'explode' failed" in error and "bad input 3" in error
    (run,) = as_json("pipeline", "runs")
    assert run["status"] == "failed"
    statuses = {s["step"]: s["status"] for s in as_json("run", "describe", run["name"])["steps"]}
    assert statuses == case("failing_step").statuses
    text = ok("run", "describe", run["name"])
    assert "explode: " in text and "--logs STEP" in text
    logs = ok("run", "describe", run["name"], "--logs", "explode")
    assert "about to fail" in logs and "ValueError: bad input 3" in logs


def test_bad_pipeline_input(repo: Path) -> None:
    assert "no file" in fails("pipeline", "run", "missing.py:nope")
    assert "no pipeline 'ghost'" in fails("pipeline", "run", "ghost")
    assert "unexpected keyword argument 'm'" in fails("pipeline", "run", QUICKSTART, "-p", "m=1")
    assert "no stack named 'ghost'" in fails("pipeline", "run", QUICKSTART, "--stack", "ghost")
    bad = repo / "bad.yaml"
    bad.write_text("colour: red\n")
    assert "unknown key 'colour'" in fails("pipeline", "run", QUICKSTART, "--config", str(bad))
    result = invoke("pipeline", "run", QUICKSTART, "-p", "n")
    assert result.exit_code == 2 and "'n' is not KEY=VALUE" in result.stderr
    assert as_json("pipeline", "runs") == []
    assert "no run 'ghost'" in fails("run", "describe", "ghost")


def test_export_with_the_local_stack_has_nothing_to_export(repo: Path) -> None:
    error = fails("pipeline", "export", QUICKSTART, "--stack", "default", "--output", str(repo / "out"))
    assert "nothing to export" in error
    assert "compiles for an engine" in error
    assert not (repo / "out").exists()


def test_deploy_on_a_schedule_needs_an_orchestrator_with_schedules(repo: Path) -> None:
    error = fails("pipeline", "deploy", QUICKSTART, "--stack", "default", "--cron", "0 6 * * *")
    assert "cannot run schedules" in error
    assert as_json("pipeline", "runs") == []
    result = invoke("pipeline", "deploy", QUICKSTART, "--stack", "default", "--cron", "* * * * *", "--interval", "60")
    assert result.exit_code == 2 and "not both" in result.stderr
    result = invoke("pipeline", "deploy", QUICKSTART, "--stack", "default", "--start-date", "yesterday")
    assert result.exit_code == 2 and "ISO 8601" in result.stderr


def test_deploy_without_a_schedule_submits_a_run(repo: Path) -> None:
    out = ok("pipeline", "deploy", QUICKSTART, "--stack", "default", "-p", "n=5")
    (run,) = as_json("pipeline", "runs")
    assert f"Submitted run {run['name']} on stack 'default': completed" in out
    assert run["parameters"] == {"n": 5}


# -- artifacts --------------------------------------------------------------------------
def test_artifact_list_and_describe(repo: Path) -> None:
    name, *_ = run_pipeline(QUICKSTART, "-p", "n=4")
    artifacts = as_json("artifact", "list")
    scoped = {"quickstart::load_data::numbers", "quickstart::split::even", "quickstart::split::odd"}
    assert {a["name"] for a in artifacts} >= scoped
    (numbers,) = as_json("artifact", "list", "--name", "numbers")
    assert numbers["version"] == 1 and numbers["data_type"] == "builtins:list"
    assert (numbers["pipeline"], numbers["step"]) == ("quickstart", "load_data")
    assert numbers["id"][:8] in ok("artifact", "list")

    described = as_json("artifact", "describe", numbers["id"])
    assert described["uri"] == numbers["uri"] and Path(described["uri"]).is_dir()
    assert described["materializer"].endswith(":BuiltInMaterializer")
    assert len(described["content_hash"]) == 64
    assert described["producer"]["step"] == "load_data" and described["producer"]["run"] == name
    assert [(c["step"], c["run"]) for c in described["consumers"]] == [("split", name)]
    assert described["metadata"] == {"length": 4}
    assert described["visualizations"] == []
    assert (described["pipeline"], described["step"], described["removed"]) == ("quickstart", "load_data", None)

    text = ok("artifact", "describe", numbers["id"])
    for piece in (
        "URI:",
        "Type:",
        "Materializer:",
        "Content hash:",
        f"step load_data of run {name}",
        f"step split of run {name}",
        "step load_data of pipeline quickstart",
        "length: 4",
    ):
        assert piece in text
    assert ok("artifact", "show", numbers["id"]).strip() == "[0, 1, 2, 3]"
    assert "no artifact version 'ghost'" in fails("artifact", "describe", "ghost")


VIZ_PIPELINE = """
from typing import Annotated

from conveyor import BaseMaterializer, pipeline, step


class Report:
    def __init__(self, text):
        self.text = text


class ReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Report,)

    def save(self, data):
        with self.open("report.txt", "wb") as f:
            f.write(data.text.encode())

    def load(self, data_type):
        with self.open("report.txt") as f:
            return Report(f.read().decode())

    def save_visualizations(self, data):
        with self.open("report.md", "wb") as f:
            f.write(("# Report\\n\\n" + data.text + "\\n").encode())
        with self.open("chart.png", "wb") as f:
            f.write(b"\\x89PNG\\r\\n\\x1a\\n")
        return {self.path("report.md"): "markdown", self.path("chart.png"): "png"}


@step
def write(words: int) -> Annotated[Report, "report"]:
    return Report(" ".join(["word"] * words))


@pipeline(name="viz")
def viz(words: int = 3) -> None:
    write(words)
"""


def test_artifact_show_prints_visualizations(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = repo / "viz_pipeline.py"
    source.write_text(textwrap.dedent(VIZ_PIPELINE))
    run_pipeline(f"{source}:viz")
    (report,) = as_json("artifact", "list", "--name", "report")
    kinds = {v["kind"]: v["uri"] for v in as_json("artifact", "describe", report["id"])["visualizations"]}
    assert set(kinds) == {"markdown", "png"}
    assert Path(kinds["png"]).read_bytes().startswith(b"\x89PNG")

    shown = ok("artifact", "show", report["id"])
    assert "# Report\n\nword word word\n" in shown
    assert kinds["png"] in shown  # an image prints its path

    opened: list[str] = []
    monkeypatch.setattr(click, "launch", lambda url, **kw: opened.append(url) or 0)
    shown = ok("artifact", "show", report["id"], "--open")
    assert opened == [kinds["png"]]
    assert "# Report" in shown
