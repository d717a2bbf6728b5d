"""Helpers shared by core's tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a module of user code and make sure a fresh import sees it."""
    path = folder / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)
    # Bytecode is checked by whole-second mtime and size: an edit of the same
    # length within a second would otherwise run the old code.
    Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
    return path


def fake_distribution(
    folder: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None
) -> Path:
    """An installed-looking distribution (dist-info with entry points) in ``folder``.

    Put ``folder`` on ``sys.path`` and ``importlib.metadata`` finds it.
    """
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for mod, source in (modules or {}).items():
        (folder / f"{mod}.py").write_text(source)
    return info


# The CLI through click's test runner, as the CLI tests drive it.


def invoke(*args: str, input: str | None = None) -> Any:
    """Run ``conveyor ARGS`` in this process."""
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def without_notice(text: str) -> str:
    """Output without the line that says which server or profile a command uses."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("conveyor: using "))


def ok(*args: str) -> str:
    """Run a command that must succeed; return its stdout."""
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: {result.stderr or result.output}"
    return result.stdout


def as_json(*args: str) -> Any:
    """Run a command with --json and parse its output."""
    return json.loads(ok(*args, "--json"))


def fails(*args: str, code: int = 1) -> str:
    """Run a command that must fail; return its one-line error."""
    result = invoke(*args)
    assert result.exit_code == code, f"{args}: exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output
    # A command that uses a server (or a named profile) says so first, and a run's progress lines
    # ("conveyor | ...") may come before its error; the error is the one line left.
    lines = [
        line for line in result.stderr.strip().splitlines() if not line.startswith(("conveyor: using ", "conveyor | "))
    ]
    assert len(lines) == 1, lines
    assert lines[0].startswith("conveyor: error: "), lines[0]
    return lines[0]


# Model versions created at the same time: 8 parallel steps of one run and 2 other processes.

RACE_MODULE = """
import os, sys, time
from pathlib import Path
from conveyor import Model, get_step_context, pipeline, step


@step(model=Model(name="racer"), enable_cache=False)
def own_version(i: int) -> int:
    return get_step_context().model_version.number


@pipeline(enable_cache=False)
def eight() -> None:
    for i in range(8):
        own_version(i)


@step(enable_cache=False)
def run_version() -> int:
    return get_step_context().model_version.number


@pipeline(model=Model(name="racer"), enable_cache=False)
def single() -> None:
    run_version()


if __name__ == "__main__":
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    single()
"""


def race_for_versions(folder: Path) -> list[Any]:
    """Run 8 steps that each create a version of model ``racer`` in one run (threads), while 2 other
    processes each run a pipeline that creates one; returns the three runs (the 8-step one first).

    The store is the repository's, or ``CONVEYOR_STORE_URL``.
    """
    import os
    import subprocess
    import time

    from conveyor import Client
    from conveyor._repository import Repository

    # The schema and the default stack exist before the racers start: they race for versions only.
    Repository.current().stack(None)
    write_module(folder, "racers", RACE_MODULE)
    sys.path.insert(0, str(folder))
    try:
        import racers

        go = folder / "go"
        procs = []
        for i in range(2):
            ready = folder / f"ready{i}"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
            procs.append(
                (
                    ready,
                    subprocess.Popen(
                        [sys.executable, str(folder / "racers.py"), str(ready), str(go)],
                        cwd=folder,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    ),
                )
            )
        deadline = time.monotonic() + 120
        while not all(r.exists() for r, _ in procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        many = racers.eight()
        for _, proc in procs:
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, out.decode(errors="replace")
    finally:
        sys.path.remove(str(folder))
    client = Client()
    others = [r for r in client.list_runs("single")]
    return [many, *others]


BEFORE_MODELS = "0003"
"""The schema revision before models (0006): a store made then upgrades through 0006 and what follows."""


# A training pipeline with a model, and pipelines that load versions of it.
MODEL_PIPELINES = """
from typing import Annotated, Any
from conveyor import Model, get_step_context, log_metadata, pipeline, step


@step
def load(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step
def train(numbers: list[int], lr: float = 0.1) -> Annotated[dict, "model"]:
    log_metadata({"accuracy": 0.5 + lr, "params": {"lr": lr}})
    log_metadata({"rows": len(numbers)})
    version = get_step_context().model_version
    return {"weights": sum(numbers), "lr": lr, "made_in": version.number if version else None}


@pipeline(model=Model(name="churn", description="predicts churn", tags=["tabular"], license="MIT"))
def training(n: int = 5, lr: float = 0.1) -> None:
    train(load(n), lr)


@pipeline
def training_without_model(n: int = 5, lr: float = 0.1) -> None:
    train(load(n), lr)


@step
def predict(model: dict, x: int) -> int:
    return model["weights"] * x


@pipeline
def scoring(model: str = "churn@production", x: int = 2) -> None:
    predict(model, x)


@step
def learning_rate(clf: dict) -> float:
    return clf["lr"]


@pipeline
def by_type() -> None:
    learning_rate(Model(name="churn", version="production"))


@step
def rows(data: list[int]) -> int:
    return len(data)


@pipeline
def by_name() -> None:
    rows(Model(name="churn", version="latest").artifact("numbers"))


@step
def anything(data: Any) -> int:
    return 1


@pipeline
def ambiguous() -> None:
    anything(Model(name="churn"))
"""


def init_repository(folder: Path) -> None:
    """Make ``folder`` a repository (what ``conveyor init`` makes, without opening its store)."""
    from conveyor._repository import Repository

    Repository.init(folder)


def fuzz_target(start_server: Callable[..., Any], postgres_server: Any, prefix: str) -> Any:
    """A conveyor server over a new PostgreSQL database, with something to find (a secret), for :func:`fuzz_openapi`."""
    server = start_server(postgres_server.url(postgres_server.create_database(prefix)))
    server.api("POST", "/api/secrets", {"name": "known", "values": {"k": "v"}})
    return server


def fuzz_openapi(server: Any, which: Callable[[str, str], bool], examples: int = 30) -> int:
    """schemathesis on the operations of ``server``'s OpenAPI document that ``which(method, path)`` picks.

    Every request is sent with an admin's key; none may get a 5xx, and every
    refusal is one line of JSON (``{"error": ...}``). Returns how many
    operations were fuzzed.
    """
    import schemathesis  # installed by the core session, where the server tests run
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    picked = [op for op in operations if which(op.method.upper(), op.path)]
    for operation in picked:

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("error"), str) and "\n" not in body["error"], (where, body)

        call()
    return len(picked)
