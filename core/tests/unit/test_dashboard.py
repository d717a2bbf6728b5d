"""The dashboard's renderers and queries with hostile text: views and labels never become markup, filters match exactly."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.server.dashboard._dag import layout, render_svg
from conveyor.server.dashboard._markdown import render_markdown
from conveyor.server.dashboard._queries import RunDetail

_ALLOWED = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "pre", "code", "strong", "em"}
_ALLOWED |= {"table", "thead", "tbody", "tr", "th", "td"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


HOSTILE = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                "<img src=x onerror=alert(1)>",
                "# ",
                "| a | b |",
                "|---|---|",
                "```",
                "**",
                "*",
                "`",
                "- ",
                "1. ",
                "\n",
                "javascript:",
                "&lt;",
                "\"'",
                "<iframe>",
            ]
        ),
        max_size=30,
    ).map("".join),
)


@settings(max_examples=150, deadline=None)
@given(HOSTILE)
def test_markdown_views_hold_only_plain_formatting_tags(text: str) -> None:
    parser = _Tags()
    parser.feed(render_markdown(text))
    for tag, attrs in parser.tags:
        assert tag in _ALLOWED, tag
        assert attrs == []


def test_markdown_renders_what_the_data_plugins_write() -> None:
    html = render_markdown("# Summary\n\n| column | mean |\n|---|---:|\n| x | 1.5 |\n\n- **rows**: 3\n- `dtype`: float")
    assert "<h1>Summary</h1>" in html
    assert "<th>column</th>" in html and "<td>1.5</td>" in html
    assert "<li><strong>rows</strong>: 3</li>" in html and "<code>dtype</code>" in html


def _detail(run_name: str, output: str) -> RunDetail:
    a = SimpleNamespace(id="a", inputs={}, outputs={output: None}, after=())
    b = SimpleNamespace(
        id="b", inputs={"x": SimpleNamespace(kind="artifact", step="a", output=output)}, outputs={}, after=("a",)
    )
    deployment = SimpleNamespace(pipeline=SimpleNamespace(steps=(a, b)))
    return RunDetail(run=SimpleNamespace(name=run_name), pipeline="p", deployment=deployment, steps={})  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=80).filter(lambda s: "\x00" not in s and all(c >= " " for c in s)),
    st.text(max_size=40).filter(lambda s: all(c >= " " for c in s)),
)
def test_dag_svg_is_well_formed_whatever_the_names(run_name: str, output: str) -> None:
    svg = render_svg(_detail(run_name, output))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("aria-label") == f"DAG of run {run_name}"
    edges = [e for e in root.iter(f"{ns}path") if "edge" in (e.get("class") or "")]
    assert [e.get("data-output") for e in edges if e.get("class") == "edge"] == [output]
    links = [a.get("href") for a in root.iter(f"{ns}a")]
    assert all(h.startswith("/runs/") and "<" not in h and '"' not in h for h in links)


def test_layout_puts_each_step_right_of_its_inputs() -> None:
    steps = [SimpleNamespace(id=f"s{i}", inputs={}, outputs={"o": None}, after=()) for i in range(3)]
    steps.append(
        SimpleNamespace(
            id="join",
            inputs={f"i{i}": SimpleNamespace(kind="artifact", step=f"s{i}", output="o") for i in range(3)},
            outputs={},
            after=(),
        )
    )
    nodes, width, height = layout(steps)
    assert all(nodes["join"].x > nodes[f"s{i}"].x for i in range(3))
    assert len({nodes[f"s{i}"].y for i in range(3)}) == 3  # no two on top of each other
    assert width > nodes["join"].x and height >= 3 * nodes["s0"].h


def _store_with_runs(tmp_path: Path, tags: list[list[str]]) -> Any:
    from conveyor.stores.sql import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'dash.db'}", migrate=True)
    pipeline = store.get_or_create_pipeline("p")
    store.save_deployment("d" * 32, pipeline.id, "{}")
    for i, run_tags in enumerate(tags):
        store.create_run(
            name=f"run-{i}",
            pipeline_id=pipeline.id,
            deployment_id="d" * 32,
            status="completed" if i % 2 else "failed",
            stack_name="default",
            orchestrator="local",
            extra={"tags": run_tags},
        )
    return store


TAG = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(TAG, max_size=3), min_size=1, max_size=6), TAG)
def test_the_tag_filter_finds_exactly_the_runs_with_that_tag(
    tmp_path_factory: Any, tags: list[list[str]], wanted: str
) -> None:
    from conveyor.server.dashboard._queries import Queries, RunFilter

    store = _store_with_runs(tmp_path_factory.mktemp("tags"), tags)
    try:
        found = Queries(store).runs(RunFilter(tag=wanted))
        assert {r.name for r in found.rows} == {f"run-{i}" for i, t in enumerate(tags) if wanted in t}
        assert found.total == len(found.rows)
    finally:
        store.close()


def test_runs_pages_and_filters_count_in_one_query(tmp_path: Path) -> None:
    from conveyor.server.dashboard._queries import Queries, RunFilter

    store = _store_with_runs(tmp_path, [["nightly"] if i % 3 == 0 else [] for i in range(120)])
    try:
        q = Queries(store)
        first = q.runs(RunFilter(), per_page=50)
        assert (first.total, first.pages, len(first.rows)) == (120, 3, 50)
        assert first.rows[0].name == "run-119"  # newest first
        last = q.runs(RunFilter(page=3), per_page=50)
        assert len(last.rows) == 20 and last.rows[-1].name == "run-0"
        beyond = q.runs(RunFilter(page=9), per_page=50)
        assert beyond.rows == [] and beyond.total == 120
        failed_nightly = q.runs(RunFilter(status="failed", tag="nightly"), per_page=50)
        assert {r.name for r in failed_nightly.rows} == {f"run-{i}" for i in range(0, 120, 6)}
    finally:
        store.close()


def test_focus_on_a_step_of_a_long_chain_draws_only_its_neighbours() -> None:
    from conveyor.server.dashboard._dag import neighbourhood

    steps = [SimpleNamespace(id="s0", inputs={}, outputs={"o": None}, after=())]
    for i in range(1, 150):
        inp = {"x": SimpleNamespace(kind="artifact", step=f"s{i - 1}", output="o")}
        steps.append(SimpleNamespace(id=f"s{i}", inputs=inp, outputs={"o": None}, after=()))
    assert neighbourhood(steps, "s70") == {"s68", "s69", "s70", "s71", "s72"}
    deployment = SimpleNamespace(pipeline=SimpleNamespace(steps=tuple(steps)))
    detail = RunDetail(run=SimpleNamespace(name="r"), pipeline="p", deployment=deployment, steps={})  # type: ignore[arg-type]
    root = ET.fromstring(render_svg(detail, "s70", focus=True))
    drawn = {g.get("data-step") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-step")}
    assert drawn == {"s68", "s69", "s70", "s71", "s72"}
    whole = ET.fromstring(render_svg(detail, "s70"))
    assert len([g for g in whole.iter("{http://www.w3.org/2000/svg}g") if g.get("data-step")]) == 150


def test_conveyor_ui_on_a_server_profile_points_at_the_servers_own_pages(repo: Path, monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    monkeypatch.setenv("CONVEYOR_SERVER", "http://127.0.0.1:9")
    result = CliRunner().invoke(cli, ["ui", "--port", "0", "--no-browser"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("conveyor: error: the active profile is the server http://127.0.0.1:9")
    assert "open http://127.0.0.1:9/ in a browser" in lines[-1]


def test_conveyor_ui_on_a_server_profile_leaves_a_folder_without_a_repository_as_it_was(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    monkeypatch.delenv("CONVEYOR_REPOSITORY", raising=False)
    monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CONVEYOR_SERVER", "http://127.0.0.1:9")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["ui", "--port", "0", "--no-browser"])
    assert result.exit_code == 1
    assert "serves the dashboard itself" in result.output
    assert list(work.iterdir()) == []


TICKER = """
import time
from conveyor import pipeline, step

@step(enable_cache=False)
def ticker() -> int:
    for i in range(600):
        print(f"tick {i}", flush=True)
        time.sleep(0.1)
    return 0

@pipeline(name="ticker", enable_cache=False)
def run_ticker() -> None:
    ticker()

if __name__ == "__main__":
    run_ticker()
"""


def test_a_running_steps_output_reaches_its_log_while_it_runs_and_survives_a_kill(repo: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from conveyor import Client

    (repo / "ticker.py").write_text(TICKER)
    proc = subprocess.Popen([sys.executable, "ticker.py"], cwd=repo, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "tick 5" not in seen:
            assert proc.poll() is None and time.monotonic() < deadline, "no live log within 60 s"
            time.sleep(0.3)
            runs = Client().list_runs("ticker") if _has_pipeline("ticker") else []
            if runs and "ticker" in runs[0].steps:
                seen = runs[0].steps["ticker"].logs()
        assert runs[0].steps["ticker"].status == "running"  # seen before the step ended
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    kept = Client().list_runs("ticker")[0].steps["ticker"].logs()
    assert kept.startswith("tick 0\ntick 1\n") and "tick 5" in kept  # what it printed before the kill


def _has_pipeline(name: str) -> bool:
    from conveyor import Client
    from conveyor.exceptions import NotFoundError

    try:
        Client().get_pipeline(name)
    except NotFoundError:
        return False
    return True


LOG_LINE = st.text(max_size=120).filter(lambda s: "\n" not in s and "\r" not in s)


@settings(max_examples=200, deadline=None)
@given(st.lists(LOG_LINE, max_size=60), st.booleans(), st.integers(-5, 70), st.integers(-5, 70))
def test_a_logs_lines_come_back_whole_in_order_and_by_range(
    lines: list[str], newline_at_end: bool, start: int, count: int
) -> None:
    from conveyor.server.dashboard._logs import LogLines

    text = "\n".join(lines) + ("\n" if newline_at_end and lines else "")
    log = LogLines.parse(text.encode())
    # Every newline ends a line; what follows the last one is a line too unless it is empty (a step mid-line).
    expected = text.split("\n")
    if expected[-1] == "":
        expected.pop()
    if newline_at_end:
        assert expected == lines
    assert log.total == len(expected)
    assert log.lines(0, log.total) == expected
    assert log.lines(start, count) == expected[max(0, start) : max(0, start) + max(0, count)]
    assert log.skipped == 0


def test_a_log_too_long_for_the_page_keeps_its_end_and_cuts_long_lines() -> None:
    from conveyor.server.dashboard import _logs

    tail = _logs.LogLines.parse(b"rest of a line\nline 1\nline 2\n", truncated=True)
    assert tail.lines(0, 5) == ["line 1", "line 2"] and tail.skipped == len(b"rest of a line\n")
    long = _logs.LogLines.parse(("x" * (_logs.LINE_CHARS_SHOWN + 10) + "\nnext").encode())
    assert long.lines(0, 2) == ["x" * _logs.LINE_CHARS_SHOWN + "…", "next"]
    many = b"".join(b"%d\n" % i for i in range(_logs.LOG_LINES_SHOWN + 3))
    shown = _logs.LogLines.parse(many)
    assert shown.total == _logs.LOG_LINES_SHOWN
    assert shown.lines(0, 1) == ["3"] and shown.skipped == len(b"0\n1\n2\n")
    assert shown.lines(shown.total - 1, 5) == [str(_logs.LOG_LINES_SHOWN + 2)]


PRINTER = """
from conveyor import pipeline, step

@step(enable_cache=False)
def printer() -> int:
    print("<script>alert(1)</script>")
    for i in range(1, 2500):
        print(f"line {i}")
    return 0

@pipeline(name="printer", enable_cache=False)
def run_printer() -> None:
    printer()

if __name__ == "__main__":
    run_printer()
"""


@pytest.fixture
def printer_ui(repo: Path) -> Iterator[str]:
    """``conveyor ui`` over a repository with one run of ``printer`` (2,500 lines of log): its URL."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from conveyor_testing.processes import free_port

    (repo / "printer.py").write_text(PRINTER)
    subprocess.run([sys.executable, "printer.py"], cwd=repo, check=True, capture_output=True, timeout=120)
    port = free_port()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
    cmd = [sys.executable, "-m", "conveyor.cli", "ui", "--port", str(port), "--no-browser"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/runs", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "conveyor ui did not answer"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


NUMBERISH = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.text(max_size=12),
    st.sampled_from(["", "1e9", "0x10", " 5", "5 ", "-0", "١٢", "NaN", "9" * 40]),
)


@pytest.mark.sql_store(
    "`conveyor ui` serves the local store; a server serves its own dashboard (the dashboard session)"
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(NUMBERISH, NUMBERISH, st.one_of(st.just("printer"), st.text(min_size=1, max_size=40)))
def test_the_log_range_route_answers_any_range_and_step_id_without_failing(
    printer_ui: str, start: str, count: str, step_id: str
) -> None:
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import quote, urlencode

    from conveyor.server.dashboard._logs import RANGE_LINES_MAX

    with urllib.request.urlopen(printer_ui + "/runs?pipeline=printer") as r:
        run_name = r.read().decode().split('data-run="', 1)[1].split('"', 1)[0]
    url = f"{printer_ui}/runs/{quote(run_name, safe='')}/steps/{quote(step_id, safe='')}/logs/lines?"
    url += urlencode({"start": start, "count": count})
    if step_id != "printer":
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url)
        # "no step 'x'", or for an id with a "/" no such page at all: a 404 page either way, never a failure.
        assert err.value.code == 404 and "<h1>Not found</h1>" in err.value.read().decode()
        return
    with urllib.request.urlopen(url) as r:
        assert r.headers["Content-Type"] == "application/json"
        body = json.loads(r.read())
    assert body["total"] == 2500 and body["running"] is False and body["skipped"] == 0
    assert len(body["lines"]) <= RANGE_LINES_MAX
    expected = ["<script>alert(1)</script>"] + [f"line {i}" for i in range(1, 2500)]
    assert body["lines"] == expected[body["start"] : body["start"] + len(body["lines"])]
