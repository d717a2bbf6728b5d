"""``conveyor ui`` over a local repository, in a real browser: the quickstart's DAG, live logs, a model's page."""

from __future__ import annotations

import re
import textwrap
import time
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
        for i in range(20):
            print(f"tick {i}", flush=True)
            time.sleep(0.5)
        return 20

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
        wait_until(lambda: lines.count() >= 5, 9.0)
        assert proc.poll() is None, "the step had already ended"
        assert lines.all_inner_texts()[:5] == [f"tick {i}" for i in range(5)]
        assert page.locator('g.node[data-step="ticker"]').get_attribute("data-status") == "running"
        screenshot(page, "live-logs")
        assert proc.wait(timeout=60) == 0
        wait_until(lambda: page.locator("#run-status").inner_text() == "completed", 10.0)
        # The log view polls on its own (every second): it brings in the last lines, then stops.
        wait_until(lambda: page.locator("#logs").get_attribute("data-running") == "false", 5.0)
        assert lines.all_inner_texts() == [f"tick {i}" for i in range(20)]
        assert page.locator("#logs .log-count").inner_text() == "20 lines"
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
    assert opened < 3.0, f"the step's page took {opened:.2f} s"
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
