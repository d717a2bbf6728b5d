"""The store refuses to guess: a damaged database is one line for every command, never a fresh empty store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests_support import write_module

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def make(size: int) -> Annotated[bytes, "blob"]:
    return b"x" * size

@pipeline(name="store_pipe")
def store_pipe(size: int = 10):
    make(size=size)

if __name__ == "__main__":
    import sys
    store_pipe(size=int(sys.argv[1]))
"""

READ_COMMANDS = [["pipeline", "runs", "store_pipe"], ["stack", "list"], ["artifact", "list"], ["pipeline", "list"]]


def _conveyor(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_REPOSITORY": str(repo)}
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def _run_pipe(repo: Path, size: int = 10) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_REPOSITORY": str(repo)}
    return subprocess.run(
        [sys.executable, "store_pipe.py", str(size)], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def ran(repo: Path) -> Path:
    write_module(repo, "store_pipe", PIPE)
    assert _run_pipe(repo).returncode == 0
    return repo / ".conveyor" / "conveyor.db"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "half"])
@pytest.mark.sql_store("damages the repository's SQLite file")
def test_a_damaged_database_is_one_line_for_every_command_and_is_not_recreated(
    repo: Path, ran: Path, damage: str
) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{ran}{suffix}").unlink(missing_ok=True)
    if damage == "truncate":
        ran.write_bytes(b"")
    elif damage == "garbage":
        ran.write_bytes(os.urandom(8192))
    else:
        data = ran.read_bytes()
        ran.write_bytes(data[:100] + os.urandom(len(data) - 100))
    size = ran.stat().st_size
    for args in [*READ_COMMANDS, ["run", "describe", "latest"]]:
        line = _one_line_error(_conveyor(repo, *args))
        assert "metadata store" in line and ("backup" in line or "init --force" in line), line
    line = _one_line_error(_run_pipe(repo))
    assert "metadata store" in line
    assert ran.stat().st_size == size  # nothing re-created it


@pytest.mark.sql_store("damages the repository's SQLite file")
def test_init_force_sets_a_damaged_store_aside_and_starts_a_new_one(repo: Path, ran: Path) -> None:
    ran.write_bytes(b"")
    result = _conveyor(repo, "init", "--force")
    assert result.returncode == 0, result.stderr
    kept = list(ran.parent.glob("conveyor.db.damaged-*"))
    assert len(kept) == 1 and kept[0].stat().st_size == 0
    assert _conveyor(repo, "stack", "list").returncode == 0
    assert _run_pipe(repo).returncode == 0


@pytest.mark.sql_store("init --force replaces the repository's SQLite file")
def test_init_force_leaves_a_working_store_alone(repo: Path, ran: Path) -> None:
    before = ran.read_bytes()
    assert _conveyor(repo, "init", "--force").returncode == 0
    assert "store_pipe" in _conveyor(repo, "pipeline", "list").stdout
    assert not list(ran.parent.glob("conveyor.db.damaged-*"))
    assert len(ran.read_bytes()) >= len(before)


@pytest.mark.sql_store("writes a foreign SQLite file as the store")
def test_a_database_of_another_application_is_refused(repo: Path) -> None:
    import sqlite3

    (repo / ".conveyor").mkdir(exist_ok=True)
    con = sqlite3.connect(repo / ".conveyor" / "conveyor.db")
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    line = _one_line_error(_conveyor(repo, "stack", "list"))
    assert "not a conveyor metadata store" in line


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository on a 6 MiB tmpfs of its own (needs root, as CI runs)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.decode().strip()}")
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(mount))
    monkeypatch.chdir(mount)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_leaves_no_run_running_and_reads_still_work(small_disk: Path) -> None:
    repo = small_disk
    write_module(repo, "store_pipe", PIPE)
    assert _run_pipe(repo).returncode == 0
    filler = repo / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (256 << 10))
                f.flush()
        except OSError:
            pass
    result = _run_pipe(repo, size=2 << 20)
    assert result.returncode != 0
    for args in READ_COMMANDS:
        done = _conveyor(repo, *args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    filler.unlink()
    runs = _conveyor(repo, "pipeline", "runs", "store_pipe", "--json")
    assert runs.returncode == 0, runs.stderr
    import json

    statuses = [r["status"] for r in json.loads(runs.stdout)]
    assert "running" not in statuses and statuses.count("completed") == 1
    assert shutil.disk_usage(repo).free > 0
