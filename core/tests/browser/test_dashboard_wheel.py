"""The dashboard installed from a wheel into a clean virtual environment: no Node.js, nothing from the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, wait_for_http

from conveyor_testing.processes import free_port

# Builds a wheel and installs it with its dependencies (from PyPI or uv's cache).
pytestmark = pytest.mark.integration

SHIPPED = [
    "conveyor/server/dashboard/static/htmx.min.js",
    "conveyor/server/dashboard/static/htmx.LICENSE",
    "conveyor/server/dashboard/static/logs.js",
    "conveyor/server/dashboard/static/dag.js",
    "conveyor/server/dashboard/static/dashboard.css",
    "conveyor/server/dashboard/templates/base.html",
    "conveyor/server/dashboard/templates/run.html",
    "conveyor/server/dashboard/templates/_logs.html",
]


def test_the_dashboard_runs_from_a_wheel_in_a_clean_venv_without_node(tmp_path: Path, page: Any) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("no uv on PATH: it builds the wheel and the clean environment (pip install uv)")

    def run(*cmd: str | Path) -> None:
        done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr

    run(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", ROOT / "core")
    (wheel,) = (tmp_path / "dist").glob("conveyor-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in SHIPPED if name not in inside] == []
    venv = tmp_path / "venv"
    run(uv, "venv", "--python", sys.executable, venv)
    overrides = ROOT / "constraints" / "overrides.txt"
    run(uv, "pip", "install", "--python", venv / "bin" / "python", "--override", overrides, f"{wheel}[server]")

    repo = tmp_path / "repo"
    repo.mkdir()
    # Only the environment's own programs: no node, no npm, and the checkout is not importable from here.
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update(CONVEYOR_REPOSITORY=str(repo), CONVEYOR_CONFIG_DIR=str(tmp_path / "config"))
    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "conveyor"), "ui", "--port", str(port), "--no-browser"],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/runs", proc, log, timeout=60)
        statics: dict[str, int] = {}
        page.on("response", lambda r: statics.update({r.url: r.status}) if "/static/" in r.url else None)
        page.goto(url + "/runs")
        assert page.locator("h1").inner_text() == "Runs"
        assert page.locator("p.count").inner_text() == "0 runs"
        page.wait_for_load_state("load")
        assert statics == {
            f"{url}/static/dashboard.css": 200,
            f"{url}/static/htmx.min.js": 200,
            f"{url}/static/logs.js": 200,
            f"{url}/static/dag.js": 200,
        }
        assert page.evaluate("typeof htmx") == "object"  # the vendored script ran
        assert page.locator("header.top").evaluate("el => getComputedStyle(el).display") == "flex"  # styled
        imported = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import conveyor; print(conveyor.__file__)"],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout
        assert imported.startswith(str(venv)), imported  # the wheel's copy, not the checkout
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
