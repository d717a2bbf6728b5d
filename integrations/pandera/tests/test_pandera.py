"""The pandera data validator and the ready-made validation step, run on the local orchestrator."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera_test_support import cli, cli_fails, write_module

from conveyor.exceptions import ConveyorError, StackError, StepFailedError

PIPE = """
import pandas as pd
import pandera.pandas as pa
from conveyor import get_step_context, pipeline, step
from conveyor_pandera import pandera_validator

class Trips(pa.DataFrameModel):
    distance: float = pa.Field(ge=0)
    fare: float = pa.Field(ge=0, le=500)
    city: str = pa.Field(isin=["berlin", "paris"])

trips_schema = pa.DataFrameSchema({"fare": pa.Column(float, pa.Check.ge(0))}, name="fares")

@step
def load(bad: bool) -> pd.DataFrame:
    if bad:
        return pd.DataFrame({"distance": [1.0, -2.0, 3.0], "fare": [10.0, 20.0, 900.0], "city": ["berlin", "rome", "paris"]})
    return pd.DataFrame({"distance": [1.0, 2.0], "fare": [10.0, 20.0], "city": ["berlin", "paris"]})

@step
def count() -> int:
    return 3

strict = pandera_validator(schema=Trips, on_failure="fail")
lenient = pandera_validator(schema=Trips, on_failure="warn", id="check_trips")
by_instance = pandera_validator(schema=trips_schema)

@pipeline
def strict_pipe(bad: bool = False) -> None:
    strict(load(bad))

@pipeline
def lenient_pipe(bad: bool = True) -> None:
    lenient(load(bad))

@pipeline
def instance_pipe() -> None:
    by_instance(load(False))

@pipeline
def wrong_input() -> None:
    strict(count())

@step(data_validator="pandera")
def own_check(frame: pd.DataFrame) -> bool:
    return get_step_context().data_validator.validate(frame, Trips, on_failure="warn").valid

@pipeline
def component_pipe(bad: bool = True) -> None:
    own_check(load(bad))
"""


def _orchestrator(mode: str) -> None:
    if mode == "process":
        cli("orchestrator", "register", "proc", "--flavor", "local", "--mode", "process")
        cli("stack", "register", "proc", "-o", "proc", "-a", "default", "--set")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_valid_frame_passes_and_its_report_is_shown(repo: Path, mode: str) -> None:
    write_module(repo, "trips_pipe", PIPE)
    _orchestrator(mode)
    import trips_pipe

    run = trips_pipe.strict_pipe()
    report = run.steps["validate_dataframe"].outputs["report"]
    assert report.load().valid is True
    shown = cli("artifact", "show", report.id)
    assert "# Validation of Trips" in shown and "**valid**" in shown


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_invalid_frame_fails_the_step_in_one_line_naming_the_checks(repo: Path, mode: str) -> None:
    write_module(repo, "trips_pipe", PIPE)
    _orchestrator(mode)
    import trips_pipe

    with pytest.raises(StepFailedError) as err:
        trips_pipe.strict_pipe(bad=True)
    message = str(err.value)
    assert "\n" not in message
    assert "data validation failed: Trips: 3 failure case(s) in 3 rows" in message
    for check in ("distance: greater_than_or_equal_to(0)", "fare: less_than_or_equal_to(500)", "city: isin("):
        assert check in message
    from conveyor import Client

    failed = Client().list_runs("strict_pipe")[0]
    logs = cli("run", "describe", failed.name, "--logs", "validate_dataframe")
    assert "| city | isin(['berlin', 'paris']) | 1 | rome |" in logs  # the full report is in the step's logs


def test_warn_goes_on_and_the_report_lists_the_failing_rows(repo: Path) -> None:
    write_module(repo, "trips_pipe", PIPE)
    import trips_pipe

    run = trips_pipe.lenient_pipe()
    assert run.status == "completed"
    step = run.steps["check_trips"]
    assert "WARNING: data validation failed: Trips" in step.logs()
    report = step.outputs["report"].load()
    assert report.valid is False
    assert {(f.column, f.index, f.failure_case) for f in report.failures} == {
        ("distance", "1", "-2.0"),
        ("fare", "2", "900.0"),
        ("city", "1", "rome"),
    }
    shown = cli("artifact", "show", step.outputs["report"].id)
    assert "**INVALID**" in shown
    assert "| city | isin(['berlin', 'paris']) | 1 | rome |" in shown
    listed = json.loads(cli("artifact", "list", "--json"))
    assert any(a["name"].endswith("report") for a in listed)


def test_a_schema_object_at_module_level_works_too(repo: Path) -> None:
    write_module(repo, "trips_pipe", PIPE)
    import trips_pipe

    run = trips_pipe.instance_pipe()
    assert run.steps["validate_dataframe"].outputs["report"].load().schema_name == "fares"


def test_a_validator_fed_a_non_dataframe_is_a_compile_time_type_error(repo: Path) -> None:
    write_module(repo, "trips_pipe", PIPE)
    import trips_pipe

    with pytest.raises(ConveyorError, match="DataFrame") as err:
        trips_pipe.wrong_input()
    assert "\n" not in str(err.value)
    from conveyor import Client

    assert Client().list_runs() == []


def test_the_data_validator_component_is_checked_at_compile_time_and_used_in_steps(repo: Path) -> None:
    write_module(repo, "trips_pipe", PIPE)
    import trips_pipe

    with pytest.raises(StackError, match="asks for data-validator 'pandera', which stack 'default' lacks"):
        trips_pipe.component_pipe()
    assert "on_failure" in cli_fails("data-validator", "register", "pv", "--flavor", "pandera", "--on-failure", "x")
    cli("data-validator", "register", "pv", "--flavor", "pandera")
    assert "pandera" in cli("data-validator", "flavor", "list")
    cli("stack", "register", "checked", "-o", "default", "-a", "default", "-d", "pv", "--set")
    run = trips_pipe.component_pipe()
    assert run.steps["own_check"].output.load() is False
    assert "WARNING: data validation failed: Trips" in run.steps["own_check"].logs()


def test_the_step_refuses_a_schema_it_could_not_import_again() -> None:
    import pandera.pandas as pa

    from conveyor_pandera import pandera_validator

    def make() -> object:
        class Local(pa.DataFrameModel):
            x: int

        return Local

    with pytest.raises(ConveyorError, match="top level of a module"):
        pandera_validator(schema=make())
    with pytest.raises(ConveyorError, match="on_failure must be 'fail' or 'warn'"):
        pandera_validator(schema="a:b", on_failure="explode")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=8))
def test_hostile_values_stay_inside_their_table_cell_and_are_escaped_in_html(values: list[str]) -> None:
    import pandas as pd
    import pandera.pandas as pa

    from conveyor_pandera import validate_frame

    schema = pa.DataFrameSchema({"v": pa.Column(str, pa.Check.isin(["only this"]))}, name="hostile")
    frame = pd.DataFrame({"v": [v for v in values if v != "only this"] or ["x"]})
    report = validate_frame(frame, schema)
    assert not report.valid
    markdown = report.to_markdown()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| v |")]
    assert len(table_rows) == len(report.failures)
    html = report.to_html()
    assert "<script" not in html.replace("&lt;script", "")
    assert html.count("<tr>") == len(report.failures) + 1


@pytest.mark.integration
def test_the_report_is_shown_on_the_dashboard(repo: Path) -> None:
    from conveyor_testing.processes import free_port, spawn_server, stop_server, wait_for_http

    write_module(repo, "trips_pipe", PIPE)
    import trips_pipe

    report = trips_pipe.lenient_pipe().steps["check_trips"].outputs["report"]
    port = free_port()
    log = repo / "ui.log"
    ui = spawn_server(
        [sys.executable, "-m", "conveyor.cli", "ui", "--port", str(port), "--no-browser"],
        log_path=log,
        cwd=repo,
        env=dict(os.environ),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/runs", proc=ui, what="conveyor ui", log_path=log, timeout=120)
        with urllib.request.urlopen(f"{base}/artifacts/{report.id}", timeout=30) as response:  # noqa: S310 - 127.0.0.1
            page = response.read().decode()
        # The Markdown view, rendered in the page: the failing check and its row.
        assert "INVALID" in page and "rome" in page and "isin(" in page
        views = sorted(set(re.findall(rf"/artifacts/{report.id}/views/(\d+)", page)))
        assert views, page
        bodies = []
        for index in views:
            with urllib.request.urlopen(f"{base}/artifacts/{report.id}/views/{index}", timeout=30) as response:  # noqa: S310
                assert "sandbox" in response.headers["Content-Security-Policy"]
                bodies.append(response.read().decode())
        assert any("<table" in body and "rome" in body for body in bodies)  # the HTML view, served sandboxed
    finally:
        stop_server(ui)
