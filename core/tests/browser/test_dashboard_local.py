"""``conveyor ui`` over a local repository, in a real browser: the quickstart's DAG, live logs, a model's page."""

from __future__ import annotations

import re
import signal
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, LocalRepo, screenshot, wait_until

# A real browser (and, on a server, a real conveyor server) drives every test here.
pytestmark = pytest.mark.integration

QUICKSTART = ROOT / "examples" / "quickstart" / "run.py"


def _nodes(page: Any) -> dict[str, dict[str, str]]:
    return page.eval_on_selector_all(
        "svg.dag g.node",
        "els => Object.fromEntries(els.map(e => [e.dataset.step, {status: e.dataset.status, cached: e.dataset.cached}]))",
    )


def _edges(page: Any) -> set[tuple[str, str, str]]:
    found = page.eval_on_selector_all(
        "svg.dag path.edge", "els => els.map(e => [e.dataset.from, e.dataset.to, e.dataset.output])"
    )
    return {tuple(x) for x in found}


def test_quickstart_run_page_shows_its_dag_and_split_not_cached_on_the_second_run(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    local_repo.python(QUICKSTART)
    local_repo.python(QUICKSTART)

    page.goto(ui + "/")
    assert page.url.endswith("/runs")
    rows = page.locator("tr.run-row")
    assert rows.count() == 2
    assert page.locator("p.count").inner_text() == "2 runs"
    screenshot(page, "runs")

    rows.first.locator("a").first.click()  # newest first: the second run
    page.wait_for_selector("svg.dag")
    nodes = _nodes(page)
    assert set(nodes) == {"load_data", "split", "report"}
    assert _edges(page) == {("load_data", "split", "numbers"), ("split", "report", "even"), ("split", "report", "odd")}
    assert nodes["split"] == {"status": "completed", "cached": "false"}
    assert nodes["load_data"] == {"status": "cached", "cached": "true"}
    assert nodes["report"] == {"status": "cached", "cached": "true"}
    assert page.locator('g.node[data-step="load_data"] .badge').text_content() == "cached"
    assert page.locator('g.node[data-step="split"] .badge').count() == 0
    assert re.search(r"completed · \d+\.\d s", page.locator('g.node[data-step="split"] text.meta').text_content())
    screenshot(page, "run-second")

    page.locator('g.node[data-step="split"]').click()
    panel = page.locator("#step-panel")
    panel.wait_for()
    assert panel.get_attribute("data-step") == "split"
    assert "splitting 20 numbers" in panel.locator("pre.log").inner_text()
    assert "2 allowed" in panel.inner_text()  # retries=2 in the quickstart
    outputs = panel.locator("ul.links").nth(1).locator("a")
    assert sorted(outputs.all_inner_texts()) == ["demo::split::even v2", "demo::split::odd v2"]
    screenshot(page, "run-step-panel")

    panel.get_by_role("link", name="demo::split::even v2").click()
    page.wait_for_selector("dl.facts")
    facts = page.locator("dl.facts").inner_text()
    assert "builtins:list" in facts
    assert "split" in facts and "report" in facts  # made by split, read by report
    page.locator("ul.consumers a").first.click()
    assert page.locator("#step-panel").get_attribute("data-step") == "report"

    # The first run: split ran there too (it never caches).
    page.goto(ui + "/runs")
    page.locator("tr.run-row").nth(1).locator("a").first.click()
    page.wait_for_selector("svg.dag")
    nodes = _nodes(page)
    assert all(n == {"status": "completed", "cached": "false"} for n in nodes.values()), nodes
    screenshot(page, "run-first")


SLOW = textwrap.dedent(
    """
    import time
    from conveyor import pipeline, step

    @step(enable_cache=False)
    def ticker() -> int:
        for i in range(60):
            print(f"tick {i}", flush=True)
            time.sleep(0.5)
        return 60

    @pipeline(name="slow", enable_cache=False)
    def slow() -> None:
        ticker()

    if __name__ == "__main__":
        slow()
    """
)


def test_a_running_step_shows_its_lines_before_it_ends(ui: str, local_repo: LocalRepo, page: Any) -> None:
    script = local_repo.path / "slow.py"
    script.write_text(SLOW)
    proc = local_repo.python(script, background=True)
    try:
        page.goto(ui + "/runs?pipeline=slow")
        deadline = time.monotonic() + 30
        while page.locator("tr.run-row").count() == 0:
            assert time.monotonic() < deadline, "the run did not show up"
            time.sleep(0.3)
            page.reload()
        page.locator("tr.run-row a").first.click()
        page.locator('g.node[data-step="ticker"]').click()
        page.wait_for_selector("#step-panel")
        assert page.locator("#run-status").inner_text() == "running"
        # No reload from here on: htmx polling brings the lines in.
        lines = page.locator("#logs pre.log .line")
        wait_until(lambda: lines.count() >= 5, 20.0)
        assert proc.poll() is None, "the step had already ended"
        assert lines.all_inner_texts()[:5] == [f"tick {i}" for i in range(5)]
        assert page.locator('g.node[data-step="ticker"]').get_attribute("data-status") == "running"
        assert page.locator("#step-facts dd .status").inner_text() == "running"
        assert page.locator("#step-facts ul.links").count() == 0  # no output yet
        screenshot(page, "live-logs")
        assert proc.wait(timeout=120) == 0
        wait_until(lambda: page.locator("#run-status").inner_text() == "completed", 10.0)
        assert page.locator('g.node[data-step="ticker"]').get_attribute("data-status") == "completed"
        # The step's panel follows too: its status, its duration and the output it saved.
        status = page.locator("#step-facts dd .status")
        wait_until(lambda: status.inner_text() == "completed", 5.0)
        assert re.fullmatch(r"\d+\.\d s", page.locator("#step-facts dt:text-is('Duration') + dd").inner_text())
        assert page.locator("#step-facts ul.links a").all_inner_texts() == ["slow::ticker::output v1"]
        # The log view polls on its own (every second): it brings in the last lines, then stops.
        wait_until(lambda: page.locator("#logs").get_attribute("data-running") == "false", 5.0)
        assert lines.all_inner_texts() == [f"tick {i}" for i in range(60)]
        assert page.locator("#logs .log-count").inner_text() == "60 lines"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


TRAINING = textwrap.dedent(
    """
    from typing import Annotated
    from conveyor import Model, pipeline, step


    @step
    def train(lr: float) -> Annotated[dict, "weights"]:
        return {"lr": lr}


    @pipeline(model=Model(name="churn", tags=["tabular"]))
    def training(lr: float = 0.1) -> None:
        train(lr)


    if __name__ == "__main__":
        training(lr=0.1)
        training(lr=0.2)
    """
)


def test_a_models_page_shows_versions_their_aliases_history_runs_and_artifacts(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    script = local_repo.path / "training.py"
    script.write_text(TRAINING)
    local_repo.python(script)
    for number, alias in (("1", "production"), ("2", "production"), ("1", "staging")):
        local_repo.python("-m", "conveyor.cli", "model", "version", "alias", "set", "churn", number, alias)

    page.goto(ui + "/runs")
    page.locator("nav a", has_text="Models").click()
    assert page.url.endswith("/models")
    page.locator("a", has_text="churn").click()
    assert page.locator("h1").inner_text() == "Model churn"
    versions = page.locator("table.model-versions tbody tr")
    assert versions.count() == 2  # newest first
    assert page.locator("#version-2 .alias").all_inner_texts() == ["production"]
    assert page.locator("#version-1 .alias").all_inner_texts() == ["staging"]
    history = [row.split("\t")[1:4] for row in page.locator("table.alias-history tbody tr").all_inner_texts()]
    assert history == [["staging", "", "1"], ["production", "1", "2"], ["production", "", "1"]]
    screenshot(page, "model")

    page.locator("#version-2 a", has_text="weights").click()
    assert "/artifacts/" in page.url and "weights" in page.locator("h1").inner_text()
    page.go_back()
    page.locator("#version-2 a", has_text="run").click()
    page.wait_for_selector("svg.dag")
    assert set(_nodes(page)) == {"train"}


CHATTY = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step(enable_cache=False)
    def chatty() -> int:
        print("<b>bold</b> <img src=x onerror=\\"document.title='x'\\"> & <script>document.title='x'</script>")
        for i in range(1, 200_000):
            print(f"line {i:06d}")
        return 0

    @pipeline(name="chatty", enable_cache=False)
    def chatty_pipeline() -> None:
        chatty()

    if __name__ == "__main__":
        chatty_pipeline()
    """
)

MAX_ROWS = 150
"""Rows the log view may draw at once: the lines in view and a margin, whatever the log's length."""


def _rows(page: Any) -> list[str]:
    return page.locator("#logs pre.log > span").all_inner_texts()


def _numbers_in_view(page: Any) -> list[int]:
    """Numbers of the ``line NNNNNN`` rows inside the log's scroll area (a gap still being fetched is not a line).

    Read in one call: the view redraws its rows as it scrolls.
    """
    rows = page.eval_on_selector(
        "#logs .log-scroll",
        """el => { const b = el.getBoundingClientRect();
          return [...el.querySelectorAll('pre.log > span.line')]
            .filter(s => { const r = s.getBoundingClientRect(); return r.top >= b.top - 1 && r.bottom <= b.bottom + 1; })
            .map(s => s.textContent); }""",
    )
    return [int(text.split()[1]) if text.startswith("line ") else 0 for text in rows]


def test_a_step_that_printed_200000_lines_opens_fast_and_scrolls_from_end_to_end(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    script = local_repo.path / "chatty.py"
    script.write_text(CHATTY)
    local_repo.python(script)
    page.goto(ui + "/runs?pipeline=chatty")
    run_path = page.locator("tr.run-row a").first.get_attribute("href")

    started = time.monotonic()
    page.goto(f"{ui}{run_path}?step=chatty")
    last = page.locator("#logs pre.log .line", has_text="line 199999")
    last.wait_for()
    opened = time.monotonic() - started
    title = page.title()
    # Warm, it takes well under a second; the bound leaves room for a busy machine's first read of the log.
    assert opened < 5.0, f"the step's page took {opened:.2f} s"
    assert page.locator("#logs .log-count").inner_text() == "200,000 lines"
    # It opens at the end, and draws only what is in view (plus a margin), not 200,000 rows.
    wait_until(lambda: _numbers_in_view(page)[-1:] == [199999], 5.0)
    assert len(_rows(page)) <= MAX_ROWS
    screenshot(page, "long-log-end")

    # The keyboard takes it to the first line: fetched by range, drawn as text (never as markup).
    view = page.locator("#logs .log-scroll")
    view.focus()
    page.keyboard.press("Home")
    first = page.locator("#logs pre.log .line").first
    wait_until(lambda: first.inner_text().startswith("<b>bold</b>"), 5.0)
    assert first.inner_text() == (
        "<b>bold</b> <img src=x onerror=\"document.title='x'\"> & <script>document.title='x'</script>"
    )
    assert page.locator("#logs pre.log b, #logs pre.log img, #logs pre.log script").count() == 0
    assert len(_rows(page)) <= MAX_ROWS

    # The middle: the lines in view are consecutive, and where the scroll bar says they are.
    view.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    wait_until(lambda: bool(_numbers_in_view(page)) and "…" not in _rows(page), 5.0)
    middle = _numbers_in_view(page)
    assert middle == list(range(middle[0], middle[0] + len(middle))) and len(middle) >= 20
    assert 99_000 < middle[0] < 101_000, middle[0]
    assert len(_rows(page)) <= MAX_ROWS
    screenshot(page, "long-log-middle")

    page.keyboard.press("End")
    wait_until(lambda: _numbers_in_view(page)[-1:] == [199999], 5.0)
    assert len(_rows(page)) <= MAX_ROWS
    assert page.title() == title


CACHEY = textwrap.dedent(
    """
    import time
    from conveyor import pipeline, step

    @step
    def load(n: int) -> list[int]:
        time.sleep(1.5)
        return list(range(n))

    @step(enable_cache=False)
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    @pipeline(name="cachey")
    def cachey(n: int = 7) -> None:
        total(load(n))

    if __name__ == "__main__":
        cachey()
    """
)


def test_a_cached_step_shows_how_long_the_step_run_it_reused_took(ui: str, local_repo: LocalRepo, page: Any) -> None:
    script = local_repo.path / "cachey.py"
    script.write_text(CACHEY)
    local_repo.python(script)
    local_repo.python(script)

    page.goto(ui + "/runs?pipeline=cachey")
    first_run = page.locator("tr.run-row").nth(1).get_attribute("data-run")
    page.locator("tr.run-row a").first.click()
    meta = page.locator('g.node[data-step="load"] text.meta').text_content()
    match = re.fullmatch(r"cached \(ran (\d+\.\d) s\)", meta)
    assert match and float(match.group(1)) >= 1.5, meta
    assert page.locator('g.node[data-step="load"]').get_attribute("data-cached") == "true"
    assert re.fullmatch(r"completed · \d+\.\d s", page.locator('g.node[data-step="total"] text.meta').text_content())

    page.locator('g.node[data-step="load"]').click()
    panel = page.locator("#step-panel")
    panel.wait_for()
    took = f"{match.group(1)} s"
    assert (
        panel.locator("dd.cached-from").inner_text()
        == f"cached: no time in this run; it took {took} in run {first_run}"
    )
    assert '"n": 7' in panel.locator("pre.json").inner_text()  # the step's parameters
    assert re.fullmatch(r"[0-9a-f]{16}", panel.locator("dt:text-is('Code version') + dd").inner_text())
    screenshot(page, "cached-step")

    panel.locator("dd.cached-from a").click()
    assert page.locator("h1").inner_text() == f"Run {first_run}"
    assert page.locator("#step-panel").get_attribute("data-step") == "load"
    assert page.locator("#step-panel dt:text-is('Duration') + dd").inner_text() == took
    assert page.locator('g.node[data-step="load"] text.meta').text_content() == f"completed · {took}"


def test_conveyor_ui_prints_its_url_and_listens_on_127_0_0_1_only(ui: str, local_repo: LocalRepo) -> None:
    port = int(ui.rsplit(":", 1)[1])
    printed = (local_repo.path / "ui.log").read_text()
    assert f"at {ui}/ (Ctrl-C stops it)" in printed
    # The kernel's table of listening sockets: the port is bound to 127.0.0.1 (0100007F), on no other address.
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                listening.append(address)
    assert listening == ["0100007F"]


OTHER = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step
    def hello() -> str:
        return "hello"

    @pipeline(name="other")
    def other() -> None:
        hello()

    if __name__ == "__main__":
        other()
    """
)


def _copy_runs(db: Path, pipeline: str, copies: int) -> list[dict[str, Any]]:
    """``copies`` more runs of ``pipeline`` in the store, made from its real run: one an hour back,
    statuses in turn, every third tagged ``nightly``. Returns what each copy was given."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    meta = sa.MetaData()
    runs, pipelines = (sa.Table(n, meta, autoload_with=engine) for n in ("pipeline_runs", "pipelines"))
    made = []
    with engine.begin() as conn:
        pid = conn.execute(sa.select(pipelines.c.id).where(pipelines.c.name == pipeline)).scalar_one()
        real = conn.execute(sa.select(runs).where(runs.c.pipeline_id == pid)).mappings().one()
        for n in range(copies):
            made.append(
                {
                    **real,
                    "id": f"{n:032x}",
                    "name": f"{pipeline}-copy-{n:02d}",
                    "run_key": None,
                    "created": real["created"] - timedelta(hours=n + 1),
                    "status": ("completed", "failed", "stopped")[n % 3],
                    "extra": {"tags": ["nightly"] if n % 3 == 0 else ["adhoc"]},
                }
            )
        conn.execute(runs.insert(), made)
    engine.dispose()
    return made


def test_the_runs_page_pages_and_filters_by_pipeline_status_tag_and_time(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    local_repo.python(QUICKSTART)
    (local_repo.path / "other.py").write_text(OTHER)
    local_repo.python(local_repo.path / "other.py")
    copies = _copy_runs(local_repo.path / ".conveyor" / "conveyor.db", "demo", 59)  # 61 runs in all

    page.goto(ui + "/runs")
    assert page.locator("p.count").inner_text() == "61 runs · page 1 of 2"
    assert page.locator("tr.run-row").count() == 50
    assert page.locator("tr.run-row").first.get_attribute("data-run").startswith("other-")
    page.get_by_role("link", name="Older →").click()
    assert page.locator("p.count").inner_text() == "61 runs · page 2 of 2"
    names = [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()]
    assert names == [c["name"] for c in copies[-11:]]  # oldest last
    page.get_by_role("link", name="← Newer").click()
    assert "page 1 of 2" in page.locator("p.count").inner_text()

    def shown() -> set[str]:
        return {r.get_attribute("data-run") for r in page.locator("tr.run-row").all()}

    page.select_option("select[name=pipeline]", "other")
    page.click("form.filters button")
    assert page.locator("p.count").inner_text() == "1 run" and len(shown()) == 1
    assert next(iter(shown())).startswith("other-")

    page.select_option("select[name=pipeline]", "demo")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    assert shown() == {c["name"] for c in copies if c["status"] == "failed"}
    screenshot(page, "runs-filtered")

    page.select_option("select[name=status]", "")
    page.fill("input[name=tag]", "nightly")
    page.click("form.filters button")
    assert shown() == {c["name"] for c in copies if "nightly" in c["extra"]["tags"]}
    assert all(t == "nightly" for t in page.locator("tr.run-row .tag").all_inner_texts())

    page.fill("input[name=tag]", "")
    page.select_option("select[name=since]", "24h")
    page.click("form.filters button")
    # The real run and the copies made up to 23 hours back.
    recent = {c["name"] for c in copies[:23]}
    assert len(shown()) == 24 and recent < shown()
    assert "since=24h" in page.url and "pipeline=demo" in page.url


def test_a_killed_steps_output_stays_on_its_page(ui: str, local_repo: LocalRepo, page: Any) -> None:
    script = local_repo.path / "slow.py"
    script.write_text(SLOW)
    proc = local_repo.python(script, background=True)
    try:
        page.goto(ui + "/runs?pipeline=slow")
        wait_until(lambda: page.reload() is not None and page.locator("tr.run-row").count() == 1, 30.0, every=0.3)
        page.locator("tr.run-row a").first.click()
        page.locator('g.node[data-step="ticker"]').click()
        lines = page.locator("#logs pre.log .line")
        wait_until(lambda: lines.count() >= 3, 25.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = lines.all_inner_texts()
    page.reload()
    lines.first.wait_for()
    after = lines.all_inner_texts()
    assert after[: len(before)] == before and after[:3] == ["tick 0", "tick 1", "tick 2"]
    assert len(after) < 60  # it was killed before it ended: this is what it printed until then


def test_a_click_on_a_running_runs_dag_opens_the_step_though_the_dag_refreshes_while_it_is_pressed(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    script = local_repo.path / "slow.py"
    script.write_text(SLOW)
    proc = local_repo.python(script, background=True)
    try:
        page.goto(ui + "/runs?pipeline=slow")
        wait_until(lambda: page.reload() is not None and page.locator("tr.run-row").count() == 1, 30.0, every=0.3)
        page.locator("tr.run-row a").first.click()
        box = page.locator('g.node[data-step="ticker"]').bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        # The DAG refreshes every second: a refresh arrives while the button is down (a slow click, a loaded machine).
        page.wait_for_timeout(2500)
        page.mouse.up()
        page.wait_for_selector("#step-panel")
        assert page.locator("#step-panel").get_attribute("data-step") == "ticker"
        lines = page.locator("#logs pre.log .line")
        wait_until(lambda: lines.count() >= 1, 25.0)
    finally:
        proc.kill()
        proc.wait()


GATED = textwrap.dedent(
    """
    import os
    import time
    from conveyor import pipeline, step

    GATE = "{gate}"

    @step(enable_cache=False)
    def gate() -> int:
        while not os.path.exists(GATE):
            time.sleep(0.1)
        return 1

    @step(enable_cache=False)
    def ticker(go: int) -> int:
        for i in range(60):
            print(f"tick {i}", flush=True)
            time.sleep(0.5)
        return 60

    @pipeline(name="gated", enable_cache=False)
    def gated() -> None:
        ticker(gate())

    if __name__ == "__main__":
        gated()
    """
)


def test_a_log_opened_before_its_step_starts_follows_it_past_failed_and_unanswered_requests(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    script = local_repo.path / "gated.py"
    gate = local_repo.path / "gate"  # the first step waits until this file exists
    script.write_text(GATED.replace("{gate}", str(gate)))
    proc = local_repo.python(script, background=True)
    requests: list[Any] = []

    def lines_route(route: Any) -> None:
        # The first range request fails, the second is never answered (a dropped or stuck connection).
        requests.append(route)
        if len(requests) == 1:
            route.abort()
        elif len(requests) > 2:
            route.continue_()

    try:
        page.goto(ui + "/runs?pipeline=gated")
        wait_until(lambda: page.reload() is not None and page.locator("tr.run-row").count() == 1, 30.0, every=0.3)
        run_url = ui + page.locator("tr.run-row a").first.get_attribute("href")
        page.route("**/steps/ticker/logs/lines*", lines_route)
        page.goto(run_url + "?step=ticker")
        assert page.locator("#step-facts dd .status").inner_text() == "pending"  # it has not started
        assert page.locator("#logs").get_attribute("data-running") == "true"
        # Route handlers run while Playwright is called: waiting on the page lets them.
        wait_until(lambda: page.wait_for_timeout(50) is None and len(requests) >= 2, 15.0)
        gate.write_text("go")
        lines = page.locator("#logs pre.log .line")
        wait_until(lambda: lines.count() >= 3, 40.0)
        assert lines.all_inner_texts()[:3] == ["tick 0", "tick 1", "tick 2"]
        assert len(requests) > 2
    finally:
        gate.write_text("go")
        if proc.poll() is None:
            proc.kill()
            proc.wait()


WIDE = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step
    def source(i: int) -> int:
        return i

    @step
    def combine(a: int, b: int) -> int:
        return a + b

    @pipeline(name="wide", enable_cache=False)
    def wide(layers: int = 11, width: int = 10) -> None:
        row = [source(i) for i in range(width)]
        for _ in range(layers - 1):
            row = [combine(row[i], row[(i + 1) % width]) for i in range(width)]

    if __name__ == "__main__":
        wide()
    """
)


def test_a_graph_of_110_steps_is_drawn_compact_and_focuses_on_a_step_and_its_neighbours(
    ui: str, local_repo: LocalRepo, page: Any
) -> None:
    script = local_repo.path / "wide.py"
    script.write_text(WIDE)
    local_repo.python(script)
    page.goto(ui + "/runs?pipeline=wide")
    page.locator("tr.run-row a").first.click()
    nodes = page.locator("svg.dag g.node")
    assert nodes.count() == 110
    assert page.locator("svg.dag rect").first.get_attribute("width") == "130"  # compact nodes
    assert "110 steps." in page.locator("p.focus").inner_text()

    middle = page.locator('g.node[data-step="combine_50"]')
    middle.click()
    assert page.locator("#step-panel").get_attribute("data-step") == "combine_50"
    page.get_by_role("link", name="Focus on combine_50 and its neighbours").click()
    focused = set(_nodes(page))
    assert "combine_50" in focused and 5 <= len(focused) <= 25, focused
    # Every drawn edge joins two drawn steps: the focus is a whole piece of the graph.
    assert all(a in focused and b in focused for a, b, _ in _edges(page))
    assert page.locator("#step-panel").get_attribute("data-step") == "combine_50"
    screenshot(page, "large-dag-focus")
    page.get_by_role("link", name="Show all steps").click()
    assert nodes.count() == 110


def test_a_step_that_ran_in_an_image_shows_the_image_and_its_digest(ui: str, local_repo: LocalRepo, page: Any) -> None:
    import sqlalchemy as sa

    (local_repo.path / "other.py").write_text(OTHER)
    local_repo.python(local_repo.path / "other.py")
    # What a containerized orchestrator records for the step: the image it ran, pinned by digest.
    digest = "sha256:" + "3f" * 32
    image = f"127.0.0.1:5000/ml/other@{digest}"
    engine = sa.create_engine(f"sqlite:///{local_repo.path / '.conveyor' / 'conveyor.db'}")
    steps = sa.Table("step_runs", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        assert conn.execute(steps.update().where(steps.c.step_id == "hello").values(image=image)).rowcount == 1
    engine.dispose()

    page.goto(ui + "/runs?pipeline=other")
    page.locator("tr.run-row a").first.click()
    page.locator('g.node[data-step="hello"]').click()
    panel = page.locator("#step-panel")
    assert panel.locator("dt:text-is('Image') + dd").inner_text() == image
    assert panel.locator("dt:text-is('Image digest') + dd").inner_text() == digest
    assert panel.locator("dt:text-is('Retries') + dd").inner_text() == "0 allowed · attempts 1"
