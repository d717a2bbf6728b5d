"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright, real servers.

Playwright cannot download its own browsers here; it drives the system
Chromium (``CONVEYOR_CHROMIUM``, default ``/usr/bin/chromium``), which
``scripts/bootstrap.sh`` installs. Screenshots are kept under
``test-artifacts/dashboard/`` (or ``CONVEYOR_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor_testing.processes import free_port

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CONVEYOR_TEST_ARTIFACTS", str(ROOT / "test-artifacts"))) / "dashboard"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system's), shared by the session."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run bash scripts/bootstrap.sh (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (its own cookies)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Keep a screenshot of the page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class LocalRepo:
    """A repository in a temporary folder, and the environment its commands run with."""

    path: Path
    env: dict[str, str]

    def python(self, script: Path | str, *args: str, background: bool = False) -> Any:
        """Run a Python file in the repository (waits unless ``background``)."""
        cmd = [sys.executable, str(script), *args]
        if background:
            with open(self.path / "background.log", "ab") as out:
                return subprocess.Popen(cmd, cwd=self.path, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        done = subprocess.run(cmd, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done


@pytest.fixture
def local_repo(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalRepo:
    """An empty repository on its own SQLite store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        CONVEYOR_REPOSITORY=str(tmp_path),
        CONVEYOR_CONFIG_DIR=str(tmp_path_factory.mktemp("config")),
        PYTHONDONTWRITEBYTECODE="",
    )
    return LocalRepo(tmp_path, env)


def wait_until(check: Any, timeout: float, every: float = 0.1) -> None:
    """Poll ``check()`` from Python until it is true (the pages' CSP forbids evaluated page scripts)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(every)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (or fail with the process's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dashboard exited ({proc.returncode}): {log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer in {timeout} s")


@pytest.fixture
def ui(local_repo: LocalRepo) -> Iterator[str]:
    """``conveyor ui`` over the local repository: its URL (stopped by PID after the test)."""
    port = free_port()
    log = local_repo.path / "ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "ui", "--port", str(port), "--no-browser"],
            cwd=local_repo.path,
            env=local_repo.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/runs", proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
