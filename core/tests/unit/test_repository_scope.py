"""No surprises in the folder: only `conveyor init` and running a pipeline create a repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import write_module

PIPE = """
from conveyor import pipeline, step

@step
def one() -> int:
    return 1

@pipeline(name="scope")
def scope():
    one()

if __name__ == "__main__":
    scope()
"""

READ_ONLY = [
    ["pipeline", "runs"],
    ["pipeline", "list"],
    ["run", "describe", "latest"],
    ["artifact", "list"],
    ["stack", "list"],
    ["orchestrator", "list"],
    ["secret", "list"],
    ["gc", "--dry-run"],
]


def _conveyor(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A folder with no repository in it or above it."""
    folder = tmp_path / "nothing" / "here"
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_outside_a_repository_say_so_and_create_nothing(bare: Path, args: list[str]) -> None:
    done = _conveyor(bare, *args)
    assert done.returncode == 1
    assert done.stderr == (
        f"conveyor: error: no conveyor repository in {bare} or any folder above it "
        "(create one here with `conveyor init`; running a pipeline creates one too)\n"
    )
    assert list(bare.parent.parent.rglob("*")) == [bare.parent, bare]  # not a file was written


def test_a_named_repository_that_does_not_exist_is_not_created(bare: Path) -> None:
    done = _conveyor(bare, "pipeline", "runs", CONVEYOR_REPOSITORY=str(bare))
    assert done.returncode == 1
    assert "no conveyor repository in" in done.stderr and f"conveyor init {bare}" in done.stderr
    assert not (bare / ".conveyor").exists()


def test_registering_needs_a_repository_too(bare: Path) -> None:
    done = _conveyor(bare, "orchestrator", "register", "p", "--flavor", "local")
    assert done.returncode == 1 and "no conveyor repository" in done.stderr
    assert not (bare / ".conveyor").exists()


def test_init_and_running_a_pipeline_create_it(bare: Path) -> None:
    assert _conveyor(bare, "init").returncode == 0
    assert (bare / ".conveyor" / "config.json").is_file()
    assert "No runs yet." in _conveyor(bare, "pipeline", "runs").stdout

    other = bare.parent / "other"
    other.mkdir()
    write_module(other, "scope_pipe", PIPE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    ran = subprocess.run(
        [sys.executable, "scope_pipe.py"], cwd=other, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert f"conveyor: created a repository in {other / '.conveyor'}" in ran.stderr
    assert "scope" in _conveyor(other, "pipeline", "runs").stdout


def test_a_subfolder_finds_the_repository_above(bare: Path) -> None:
    assert _conveyor(bare, "init").returncode == 0
    sub = bare / "a" / "b"
    sub.mkdir(parents=True)
    assert _conveyor(sub, "pipeline", "runs").returncode == 0
    assert not (sub / ".conveyor").exists()


def test_with_a_store_url_any_folder_reads_that_store(bare: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}"
    done = _conveyor(bare, "pipeline", "runs", CONVEYOR_STORE_URL=url)
    assert done.returncode == 0, done.stderr
    assert "No runs yet." in done.stdout
    assert not (bare / ".conveyor").exists()
    # Changing the local config still needs a repository.
    done = _conveyor(bare, "stack", "set", "default", CONVEYOR_STORE_URL=url)
    assert done.returncode == 1 and "no conveyor repository" in done.stderr


def test_the_client_outside_a_repository_raises_one_clear_error(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import Client
    from conveyor.exceptions import NoRepositoryError

    for name in ("CONVEYOR_REPOSITORY", "CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(bare)
    with pytest.raises(NoRepositoryError, match="no conveyor repository in .* or any folder above it"):
        Client()
    assert not (bare / ".conveyor").exists()
