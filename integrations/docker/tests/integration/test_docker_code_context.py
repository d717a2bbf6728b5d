"""What goes into an image's code context, with real builds: exports into the project, git checkouts, plain folders."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack, write_module

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
# The tests' git must not read the machine's configuration.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
PIPELINE = """
from conveyor import pipeline, step
from helpers import FACTOR


@step
def make(n: int) -> int:
    return n * FACTOR


@pipeline(name="ctxtest")
def ctxtest(n: int = 2) -> None:
    make(n)
"""


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is not installed (apt-get install git)")
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _project(repo: Path, *, checkout: bool) -> Any:
    """The pipeline and a helper module it imports; in a git checkout, committed (``.conveyor/`` git-ignored)."""
    write_module(repo, "helpers", "FACTOR = 3\n")
    write_module(repo, "ctx_pipeline", PIPELINE)
    if checkout:
        (repo / ".gitignore").write_text(".conveyor/\n")
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "first")
    return importlib.import_module("ctx_pipeline").ctxtest


def _build(pipe: Any, stack_name: str) -> Any:
    """Plan, build or reuse, and push the pipeline's image; what happened to it."""
    from conveyor._launch import build_deployment
    from conveyor._repository import Repository
    from conveyor.orchestrators import LaunchContext

    repo = Repository.current()
    stack = repo.stack(stack_name)
    deployment = build_deployment(pipe, pipe.trace(), stack)
    ctx = LaunchContext(store=repo.store(), stack=stack, source_root=pipe.source_root())
    builder = stack.component("image_builder")
    builder.build_images(deployment, ctx)
    return builder.builds[-1]


# Printed as one JSON line: names may hold newlines, and docker may drop a last line without one.
LIST_APP = (
    "import json, os\n"
    "out = []\n"
    "for d, dirs, files in os.walk('/app'):\n"
    "    out += [os.path.relpath(os.path.join(d, n), '/app') for n in files]\n"
    "    out += [os.path.relpath(os.path.join(d, n), '/app') for n in dirs if os.path.islink(os.path.join(d, n))]\n"
    "print(json.dumps(sorted(out)))\n"
)


def _app_files(client: Any, ref: str) -> set[str]:
    """Files and links under /app in the image (names may hold any character but NUL)."""
    out = client.containers.run(ref, ["python", "-c", LIST_APP], entrypoint=[], network_mode="none", remove=True)
    return set(json.loads(out.decode().strip().splitlines()[-1]))


def _cat(client: Any, ref: str, path: str) -> str:
    # As JSON on one whole line: docker may drop a last line that has no newline when a container ends at once.
    code = f"import json; print(json.dumps(open({path!r}, encoding='utf-8').read()))"
    out = client.containers.run(ref, ["python", "-c", code], entrypoint=[], network_mode="none", remove=True)
    return json.loads(out.decode().strip().splitlines()[-1])


# -- exporting into the project ------------------------------------------------------------
@pytest.fixture
def airflow_stack(docker_stack: str, registry: Any, base_image: str, wheel_cache: Path) -> str:
    """An Airflow stack whose tasks run in the image (docker operator): exporting it builds the image."""
    from conveyor import Client

    Client().register_component("orchestrator", "af", "airflow", {"operator": "docker"})
    return register_docker_stack(f"{registry.host}/ml", base_image, wheel_cache, name="on_airflow", orchestrator="af")


def _export(repo: Path, stack_name: str) -> tuple[str, Path]:
    """``conveyor pipeline export`` into ``dags/`` of the project: (what happened to the image, the DAG file)."""
    out = subprocess.run(
        [CONVEYOR, "pipeline", "export", "ctx_pipeline.py:ctxtest", "--stack", stack_name, "--output", "dags/"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    [image] = [line for line in out.stderr.splitlines() if line.startswith("conveyor: image ")]
    [written] = out.stdout.split()
    return image, repo / written


@pytest.mark.parametrize("checkout", [True, False], ids=["git-checkout", "plain-folder"])
def test_exporting_twice_into_the_project_gives_the_same_image_and_dag(
    checkout, airflow_stack, docker_daemon, repo, git_env
):
    _project(repo, checkout=checkout)
    first, dag = _export(repo, airflow_stack)
    assert dag.parent == repo / "dags" and " built and pushed " in first
    first_bytes = dag.read_bytes()
    if checkout:
        git(repo, "add", "dags")  # a DAG file committed with the code is still conveyor's output, not code
        git(repo, "commit", "-q", "-m", "the DAG")
    again, dag_again = _export(repo, airflow_stack)

    image = first.split()[2]  # repository:tag
    assert again.split()[2] == image and " reused " in again
    assert dag_again == dag and dag.read_bytes() == first_bytes
    files = _app_files(docker_daemon, image)
    assert {"ctx_pipeline.py", "helpers.py"} <= files
    assert not [f for f in files if f.startswith(("dags/", ".conveyor/", ".git/"))]


# -- a git checkout ------------------------------------------------------------------------
def test_in_a_checkout_the_tracked_files_are_the_code(docker_stack, docker_daemon, repo, git_env, capsys):
    pipe = _project(repo, checkout=True)
    first = _build(pipe, docker_stack)
    assert first.action == "built"
    assert _app_files(docker_daemon, first.ref) == {".gitignore", "ctx_pipeline.py", "helpers.py"}

    (repo / "scratch.py").write_text("print('draft')\n")
    (repo / "out").mkdir()
    (repo / "out" / "result.csv").write_text("a,b\n")
    untracked = _build(pipe, docker_stack)
    assert (untracked.name, untracked.action) == (first.name, "reused")
    assert "untracked Python files are not copied into the image: 'scratch.py'" in capsys.readouterr().err

    git(repo, "add", "scratch.py")
    added = _build(pipe, docker_stack)
    assert added.name != first.name and added.action == "built"
    assert "scratch.py" in _app_files(docker_daemon, added.ref)

    (repo / "helpers.py").write_text("FACTOR = 5\n")  # edited, not committed
    edited = _build(pipe, docker_stack)
    assert edited.name not in (first.name, added.name)
    assert _cat(docker_daemon, edited.ref, "/app/helpers.py") == "FACTOR = 5\n"

    (repo / ".conveyorignore").write_text("# drafts stay here\nscratch.py\n")
    ignored = _build(pipe, docker_stack)
    assert ignored.name != edited.name
    assert _app_files(docker_daemon, ignored.ref) == {".gitignore", "ctx_pipeline.py", "helpers.py"}


# -- a plain folder ------------------------------------------------------------------------
def test_in_a_plain_folder_every_file_but_ignored_ones_is_the_code(docker_stack, docker_daemon, repo):
    pipe = _project(repo, checkout=False)
    first = _build(pipe, docker_stack)
    assert _app_files(docker_daemon, first.ref) == {"ctx_pipeline.py", "helpers.py"}

    (repo / "scratch.txt").write_text("notes\n")
    scratch = _build(pipe, docker_stack)
    assert scratch.name != first.name and "scratch.txt" in _app_files(docker_daemon, scratch.ref)

    (repo / ".conveyorignore").write_text("scratch.txt\n.conveyorignore\n")
    ignored = _build(pipe, docker_stack)
    assert (ignored.name, ignored.action) == (first.name, "reused")

    (repo / "helpers.py").write_text("FACTOR = 7\n")
    edited = _build(pipe, docker_stack)
    assert edited.name != first.name
    assert _cat(docker_daemon, edited.ref, "/app/helpers.py") == "FACTOR = 7\n"


HOSTILE = [
    "with space.py",
    "ünï cödé 中文.txt",
    "-rf",
    "--help.txt",
    "new\nline.txt",
    "tab\tand\rcr.txt",
    "back\\slash.txt",
    "..hidden",
    "...",
    "dir with space/-inner.py",
    "'quote\"s$(x)`y`.txt",
]


def test_hostile_names_reach_the_image_as_they_are_and_links_stay_links(docker_stack, docker_daemon, repo):
    pipe = _project(repo, checkout=False)
    for name in [*HOSTILE, "[x]*?.txt", "drop me/too.txt"]:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")
    outside = repo.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("never in an image")
    (repo / "link-out").symlink_to("../outside/secret.txt")
    (repo / ".conveyorignore").write_text("\\[x\\]\\*\\?.txt\ndrop?me\n")

    ref = _build(pipe, docker_stack).ref
    files = _app_files(docker_daemon, ref)
    assert files == {*HOSTILE, ".conveyorignore", "ctx_pipeline.py", "helpers.py", "link-out"}
    assert _cat(docker_daemon, ref, "/app/new\nline.txt") == "content of new\nline.txt"
    out = docker_daemon.containers.run(
        ref,
        ["sh", "-c", 'readlink /app/link-out; grep -rl "never in an image" /app || echo none'],
        entrypoint=[],
        network_mode="none",
        remove=True,
    )
    assert out.decode().split("\n")[:2] == ["../outside/secret.txt", "none"]
