"""The dashboard on ``conveyor server start``, in a real browser: login, roles, 404, sandboxed views."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, screenshot, wait_until

# A real browser (and, on a server, a real conveyor server) drives every test here.
pytestmark = [pytest.mark.integration, pytest.mark.server]

QUICKSTART = ROOT / "examples" / "quickstart" / "run.py"


def _login(page: Any, url: str, name: str, password: str, next_path: str = "/runs") -> None:
    page.goto(url + next_path)
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _user(server: Any, role: str) -> tuple[str, str]:
    name, password = f"{role}-{secrets.token_hex(3)}", secrets.token_hex(10)
    server.api("POST", "/api/users", {"name": name, "role": role, "password": password})
    return name, password


def _artifact(server: Any, name: str, uri: str, views: dict[str, str]) -> str:
    values = {
        "name": name,
        "uri": uri,
        "data_type": "builtins:str",
        "materializer": "conveyor.materializers:BuiltInMaterializer",
        "content_hash": "0" * 64,
        "visualizations": views,
        "metadata": {"rows": 3},
    }
    return server.api("POST", "/api/artifacts", {"values": values})["id"]


@pytest.fixture
def server(conveyor_server: Any) -> Any:
    return conveyor_server


def test_login_logout_and_a_viewer_sees_secret_names_but_never_values(server: Any, page: Any) -> None:
    value = "v4lue-" + secrets.token_hex(8)
    secret = f"db-{secrets.token_hex(3)}"
    server.api("POST", "/api/secrets", {"name": secret, "values": {"password": value}})
    name, password = _user(server, "viewer")

    page.goto(server.url + "/runs")
    assert page.url.startswith(server.url + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".problem").count() == 1
    assert "runs" not in page.title().lower()

    _login(page, server.url, name, password)
    assert page.url == server.url + "/runs"
    assert page.locator(".who .user").inner_text() == f"{name} (viewer)"
    page.goto(server.url + "/secrets")
    row = page.locator(f'tr[data-secret="{secret}"]')
    assert row.count() == 1 and "password" in row.inner_text()
    assert value not in page.content()
    screenshot(page, "server-secrets-viewer")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto(server.url + "/secrets")
    assert "/login" in page.url  # the session is over


def test_a_missing_run_gets_a_clear_404_page(server: Any, page: Any) -> None:
    name, password = _user(server, "viewer")
    _login(page, server.url, name, password)
    response = page.goto(server.url + "/runs/no-such-run")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "no run 'no-such-run'" in page.locator(".problem").inner_text()
    assert "Traceback" not in page.content()
    response = page.goto(server.url + "/no/such/page")
    assert response.status == 404 and "there is no page at /no/such/page" in page.content()
    # The API keeps its own JSON answer.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "/api/no-such-endpoint")
    assert err.value.code == 404 and json.loads(err.value.read())["type"] == "NotFoundError"


def test_a_run_on_the_server_shows_its_dag_to_a_viewer(server: Any, page: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_REPOSITORY=str(tmp_path), CONVEYOR_SERVER=server.url, CONVEYOR_API_KEY=server.admin_key)
    done = subprocess.run([sys.executable, str(QUICKSTART)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    name, password = _user(server, "viewer")
    _login(page, server.url, name, password)
    page.locator("tr.run-row a").first.click()
    page.wait_for_selector("svg.dag")
    assert page.locator("svg.dag g.node").count() == 3
    assert page.locator("svg.dag path.edge").count() == 3
    page.locator('g.node[data-step="split"]').click()
    assert "splitting 20 numbers" in page.locator("#step-panel pre.log").inner_text()
    screenshot(page, "server-run")

    page.locator("nav a", has_text="Pipelines").click()
    row = page.locator("table tbody tr", has=page.locator("a", has_text="demo"))
    assert row.locator("td").nth(1).inner_text() == "1"  # runs
    row.locator("a", has_text="demo").first.click()
    assert page.locator("h1").inner_text() == "Pipeline demo"
    steps = page.locator("table").first.locator("tbody tr")
    assert [r.split("\t")[0] for r in steps.all_inner_texts()] == ["load_data", "split", "report"]
    assert steps.nth(1).locator("td").last.inner_text() == "off"  # split never caches
    assert page.locator("table.runs tbody tr").count() == 1


HOSTILE = """<!doctype html><html><head><title>view</title></head><body><p id="out">waiting</p><script>
const out = [];
try { parent.document.title = 'x'; out.push('parent: changed'); } catch (e) { out.push('parent: blocked'); }
fetch('/api/version').then(() => { out.push('fetch: ok'); }).catch(() => { out.push('fetch: failed'); })
  .finally(() => { document.getElementById('out').textContent = out.join('; '); });
</script></body></html>"""


def test_an_html_view_runs_sandboxed_away_from_the_page_and_the_api(server: Any, page: Any) -> None:
    folder = server.data_dir / "artifacts" / "hostile" / secrets.token_hex(4)
    folder.mkdir(parents=True)
    (folder / "data.json").write_text('"x"')
    (folder / "view.html").write_text(HOSTILE)
    artifact_id = _artifact(server, "hostile", str(folder), {"view.html": "html"})
    _login(page, server.url, "admin", server.admin_password)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{server.url}/artifacts/{artifact_id}")
    title = page.title()
    frame_el = page.locator("iframe.html-view")
    assert frame_el.get_attribute("sandbox") == "allow-scripts"  # never allow-same-origin
    frame = page.frame_locator("iframe.html-view")
    out = frame.locator("#out")
    out.wait_for()
    for _ in range(100):
        if out.inner_text() != "waiting":
            break
        page.wait_for_timeout(100)
    assert out.inner_text() == "parent: blocked; fetch: failed"  # the script ran, and reached nothing
    assert page.title() == title
    assert not [u for u in requests if "/api/" in u]
    screenshot(page, "server-html-view")
    # The view's own route carries the sandbox too (opened directly in a tab).
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    request = urllib.request.Request(
        f"{server.url}/artifacts/{artifact_id}/views/0",
        headers={"Cookie": f"conveyor_dashboard={cookies['conveyor_dashboard']}"},
    )
    with urllib.request.urlopen(request) as r:
        csp = r.headers["Content-Security-Policy"]
    assert "sandbox allow-scripts" in csp and "connect-src 'none'" in csp and "allow-same-origin" not in csp


def test_a_laptop_artifact_folder_on_a_server_is_one_line_with_the_fix(server: Any, page: Any) -> None:
    laptop = f"/home/someone-{secrets.token_hex(3)}/.conveyor/artifacts"
    server.api(
        "POST",
        "/api/components",
        {"type": "artifact_store", "flavor": "local", "name": "laptop-" + laptop[-6:], "config": {"path": laptop}},
    )
    artifact_id = _artifact(server, "far", f"{laptop}/far/1", {"summary.md": "markdown"})
    _login(page, server.url, "admin", server.admin_password)
    response = page.goto(f"{server.url}/artifacts/{artifact_id}")
    assert response.status == 200
    problem = page.locator("#store-problem")
    text = problem.inner_text()
    assert "\n" not in text.strip()
    assert f"the folder {laptop}, which is not on the server's machine" in text
    assert "shared artifact store" in page.locator("#store-problem + .hint").inner_text()
    assert "Traceback" not in page.content()
    assert page.locator("dl.facts").count() == 1  # the rest of the page is there
    screenshot(page, "server-unreachable-store")


def _png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


SUMMARY = """# Summary

| column | type |
|---|---|
| age | int64 |
| **name** | <b>str</b> |
"""


def test_an_artifact_page_shows_its_facts_and_renders_its_views(server: Any, page: Any) -> None:
    folder = server.data_dir / "artifacts" / "viewed" / secrets.token_hex(4)
    folder.mkdir(parents=True)
    files = {
        "data.json": b'"abc"',
        "summary.md": SUMMARY.encode(),
        "plot.png": _png(7, 5),
        "notes.txt": b"a <i>note</i>",
    }
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    values = {
        "name": "viewed",
        "uri": str(folder),
        "data_type": "builtins:str",
        "materializer": "conveyor.materializers:BuiltInMaterializer",
        "content_hash": "ab" * 32,
        "visualizations": {"summary.md": "markdown", "plot.png": "png", "notes.txt": "text"},
        "metadata": {"rows": 3, "columns": ["age", "name"]},
        "manifest": {rel: len(data) for rel, data in files.items()},
    }
    artifact_id = server.api("POST", "/api/artifacts", {"values": values})["id"]
    name, password = _user(server, "viewer")
    _login(page, server.url, name, password, next_path=f"/artifacts/{artifact_id}")
    assert page.locator("main > h1").inner_text() == "Artifact viewed v1"
    terms, values = page.locator("dl.facts dt").all_inner_texts(), page.locator("dl.facts dd").all_inner_texts()
    facts = dict(zip(terms, values, strict=True))
    assert facts["Type"] == "builtins:str"
    assert facts["Materializer"] == "conveyor.materializers:BuiltInMaterializer"
    assert facts["Size"] == f"{sum(len(d) for d in files.values())} B"
    assert facts["Content hash"] == "ab" * 32
    assert facts["Made by"] == "registered by hand" and facts["Read by"] == "no step yet"
    assert json.loads(page.locator("pre.json").inner_text()) == {"columns": ["age", "name"], "rows": 3}

    markdown = page.locator("section.view-markdown .markdown")
    assert markdown.locator("h1").inner_text() == "Summary"
    assert markdown.locator("th").all_inner_texts() == ["column", "type"]
    assert markdown.locator("tbody tr").count() == 2
    assert markdown.locator("strong").inner_text() == "name"
    assert markdown.locator("b").count() == 0 and "<b>str</b>" in markdown.inner_text()  # markup stays text
    image = page.locator("section.view-png img")
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth") == 7, 5.0)
    assert image.evaluate("img => img.naturalHeight") == 5
    assert page.locator("section.view-text pre.text").inner_text() == "a <i>note</i>"
    screenshot(page, "server-artifact-views")


def test_the_stacks_page_shows_secret_references_never_values_and_what_other_machines_cannot_reach(
    server: Any, page: Any
) -> None:
    value = "s3cr3t-" + secrets.token_hex(8)
    secret = f"tracker-{secrets.token_hex(3)}"
    server.api("POST", "/api/secrets", {"name": secret, "values": {"password": value}})
    suffix = secrets.token_hex(3)
    reference = "{{" + secret + ".password}}"
    made = {
        "artifact_store": server.api(
            "POST",
            "/api/components",
            {"type": "artifact_store", "flavor": "local", "name": f"shared-{suffix}", "config": {"path": "/srv/a"}},
        ),
        "orchestrator": server.api(
            "POST",
            "/api/components",
            {"type": "orchestrator", "flavor": "local", "name": f"here-{suffix}", "config": {}},
        ),
        "experiment_tracker": server.api(
            "POST",
            "/api/components",
            {
                "type": "experiment_tracker",
                "flavor": "mlflow",
                "name": f"mlflow-{suffix}",
                "config": {"tracking_uri": "http://127.0.0.1:5000", "password": reference},
            },
        ),
    }
    stack = f"team-{suffix}"
    server.api(
        "POST", "/api/stacks", {"name": stack, "component_ids": {k: v["id"] for k, v in made.items()}, "create": True}
    )
    name, password = _user(server, "viewer")
    _login(page, server.url, name, password, next_path="/stacks")
    section = page.locator(f'section.stack[data-stack="{stack}"]')
    rows = {r.split("\t")[0]: r for r in section.locator("tbody tr").all_inner_texts()}
    assert set(rows) == {"artifact_store", "experiment_tracker", "orchestrator"}
    assert reference in rows["experiment_tracker"] and value not in page.content()
    # /srv/a is not on the server's machine: one line saying so, with what to use instead.
    assert "the folder /srv/a is not on the server's machine" in rows["artifact_store"]
    assert "use a shared artifact store (s3 or fsspec) instead" in rows["artifact_store"]
    assert "runs steps on the machine that starts the run" in rows["orchestrator"]
    screenshot(page, "server-stacks")
