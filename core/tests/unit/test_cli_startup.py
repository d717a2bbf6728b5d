"""The ``conveyor`` command as a real process: what it imports, exit codes, plugins, lazy commands."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from conveyor.cli._lazy import LazyGroup
from tests_support import init_repository

HEAVY = ("sqlalchemy", "pydantic", "rich", "alembic", "yaml", "fsspec")

# Runs the CLI in a fresh interpreter, then reports which modules it imported.
PROBE = textwrap.dedent("""
    import json, sys
    from conveyor.cli import main
    try:
        main(sys.argv[2:])
        code = 0
    except SystemExit as exc:
        code = exc.code
    flavor_module = sys.modules.get("conveyor.stack._flavor")
    report = {
        "code": code,
        "top": sorted({m.split(".")[0] for m in sys.modules}),
        "conveyor": sorted(m for m in sys.modules if m.startswith("conveyor.")),
        "entry_points_scanned": bool(flavor_module and flavor_module.flavors._entry_points is not None),
    }
    with open(sys.argv[1], "w") as f:
        json.dump(report, f)
""")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh repository of its own, as the working folder."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    init_repository(tmp_path)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def probe(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "probe.json"
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], check=True, timeout=120, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def conveyor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script."""
    exe = shutil.which("conveyor", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert exe is not None, "the conveyor console script is not installed"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **(env or {})}
    )


def test_help_imports_no_store_model_table_or_plugin_library(repo: Path) -> None:
    report = probe(repo, "--help")
    assert report["code"] == 0
    assert not set(HEAVY) & set(report["top"]), report["top"]
    # only the root command's modules: no command group, client, store or flavor
    assert report["conveyor"] == ["conveyor.cli", "conveyor.cli._lazy", "conveyor.cli._main", "conveyor.exceptions"]
    assert not report["entry_points_scanned"]


def test_group_help_imports_only_that_group(repo: Path) -> None:
    report = probe(repo, "stack", "--help")
    assert report["code"] == 0
    assert not set(HEAVY) & set(report["top"]), report["top"]
    assert "conveyor.cli._stack_commands" in report["conveyor"]
    assert "conveyor.cli._pipeline_commands" not in report["conveyor"]


def test_stack_list_needs_no_models_migrations_or_plugins(repo: Path) -> None:
    assert conveyor("init").returncode == 0  # creating the database may migrate; listing must not
    report = probe(repo, "stack", "list")
    assert report["code"] == 0
    assert "sqlalchemy" in report["top"] and "rich" in report["top"]
    assert "pydantic" not in report["top"] and "alembic" not in report["top"]
    assert not report["entry_points_scanned"]
    json_report = probe(repo, "stack", "list", "--json")
    assert "rich" not in json_report["top"]


def test_console_script_and_python_m(repo: Path) -> None:
    version = conveyor("--version")
    assert (version.returncode, version.stdout.strip()) == (0, "conveyor 0.1.0")
    module = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert module.returncode == 0 and "Usage: conveyor " in module.stdout


def test_console_script_errors(repo: Path) -> None:
    unknown = conveyor("stack", "set", "ghost")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == ["conveyor: error: no stack named 'ghost' (see `conveyor stack list`)"]
    assert unknown.stdout == ""
    usage = conveyor("stack", "frobnicate")
    assert usage.returncode == 2 and "No such command 'frobnicate'" in usage.stderr
    assert "Traceback" not in unknown.stderr + usage.stderr


def test_secret_command_is_listed_only_when_its_module_exists(repo: Path) -> None:
    present = importlib.util.find_spec("conveyor.cli._secret_commands") is not None
    result = conveyor("--help")
    assert result.returncode == 0
    assert ("  secret " in result.stdout) == present


def test_broken_flavor_plugin_is_reported_and_skipped(repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[conveyor.flavors]\norchestrator.broken = broken_plugin_module:BrokenFlavor\n"
    )
    (site / "broken_plugin_module.py").write_text("raise RuntimeError('this plugin is broken')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    listed = conveyor("orchestrator", "flavor", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    names = [f["name"] for f in json.loads(listed.stdout)]
    assert "local" in names and "broken" not in names
    assert "orchestrator.broken" in listed.stderr and "broken-plugin" in listed.stderr
    assert "this plugin is broken" in listed.stderr and "Traceback" not in listed.stderr

    used = conveyor("orchestrator", "register", "b", "--flavor", "broken", env=env)
    assert used.returncode == 1
    assert used.stderr.strip().splitlines()[-1].startswith("conveyor: error: the orchestrator flavor 'broken'")
    assert "pip install --force-reinstall broken-plugin" in used.stderr
    # the rest of the CLI still works with the broken plugin installed
    assert conveyor("stack", "list", env=env).returncode == 0


SLOW_PIPELINE = """
import time

from conveyor import pipeline, step


@step(enable_cache=False)
def wait() -> int:
    print("step started", flush=True)
    time.sleep(60)
    return 1


@pipeline(name="slow")
def slow() -> None:
    wait()
"""


def test_ctrl_c_stops_the_run_and_exits_130(repo: Path) -> None:
    (repo / "slow.py").write_text(SLOW_PIPELINE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "pipeline", "run", "slow.py:slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "step started" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                seen += proc.stdout.readline()
        assert "step started" in seen, "the step never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    lines = [line for line in err.strip().splitlines() if not line.startswith("conveyor | ")]
    assert lines == ["conveyor: stopped pipeline 'slow'; its run is recorded as stopped"]
    runs = json.loads(conveyor("pipeline", "runs", "--json").stdout)
    assert [(r["pipeline"], r["status"]) for r in runs] == [("slow", "stopped")]


# -- the lazy group -----------------------------------------------------------------------
def _group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LazyGroup:
    for name in [m for m in sys.modules if m.split(".")[0] == "lazy_cli_pkg"]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    pkg = tmp_path / "lazy_cli_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("import click\n\n@click.command()\ndef hello():\n    click.echo('hi')\n")
    (pkg / "broken.py").write_text("raise ImportError('cannot import a dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    @click.group(
        cls=LazyGroup,
        lazy_commands={
            "hello": "lazy_cli_pkg.good:hello",
            "broken": "lazy_cli_pkg.broken:command",
            "missing": "lazy_cli_pkg.missing:command",
        },
        lazy_help={"hello": "Say hello.", "broken": "Broken.", "missing": "Not installed."},
        optional=frozenset({"broken", "missing"}),
    )
    def group() -> None:
        pass

    return group


def test_lazy_group_imports_a_command_only_when_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = _group(tmp_path, monkeypatch)
    help_text = CliRunner().invoke(group, ["--help"]).output
    assert "hello   Say hello." in help_text and "broken" in help_text
    assert "missing" not in help_text  # optional, and its module does not exist
    assert "lazy_cli_pkg.good" not in sys.modules
    assert CliRunner().invoke(group, ["hello"]).output == "hi\n"
    assert "lazy_cli_pkg.good" in sys.modules


def test_lazy_group_reports_a_broken_command_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = _group(tmp_path, monkeypatch)
    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 1
    assert "the 'broken' command failed to load: cannot import a dependency" in result.stderr
    missing = CliRunner().invoke(group, ["missing"])
    assert missing.exit_code == 2 and "No such command 'missing'" in missing.stderr
