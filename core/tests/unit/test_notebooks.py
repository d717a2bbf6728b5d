"""Steps, materializers and parameter models defined in notebook cells, run through a real Jupyter kernel."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

IMPORTS = """
import json
from pydantic import BaseModel
from conveyor import Client, pipeline, step
from conveyor.materializers import BaseMaterializer
"""

# A type of the notebook's own, its materializer and a parameter model: all three must travel.
TYPES = """
class Box:
    def __init__(self, items):
        self.items = list(items)

class BoxMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Box,)

    def save(self, data):
        with self.open("box.txt", "wb") as f:
            f.write(",".join(str(i) for i in data.items).encode())

    def load(self, data_type):
        with self.open("box.txt", "rb") as f:
            return Box(int(x) for x in f.read().decode().split(",") if x)

class Settings(BaseModel):
    factor: int = 2
"""

# A helper in another cell than the steps, and a constant: the step's code hash follows both.
HELPER = """
OFFSET = 1

def scale(x, factor):
    return x * factor + OFFSET
"""

STEPS = """
@step
def make(n: int, settings: Settings) -> Box:
    return Box(scale(i, settings.factor) for i in range(n))

@step
def total(box: Box) -> int:
    return sum(box.items)

@pipeline
def notebook_pipeline(n: int = 3) -> None:
    total(make(n, Settings(factor=3)))

def summary(run):
    return {
        "status": run.status,
        "total": run.steps["total"].output.load(),
        "statuses": {k: s.status for k, s in run.steps.items()},
    }

results = {}
"""

RUN_THREADS = """
Client().update_component("orchestrator", "default", {"mode": "thread"})
results["thread"] = summary(notebook_pipeline())
"""

RUN_PROCESSES = """
Client().update_component("orchestrator", "default", {"mode": "process"})
results["process"] = summary(notebook_pipeline.with_options(enable_cache=False)(n=4))
results["process_cached"] = summary(notebook_pipeline(n=4))
"""

# The helper changes in a later cell: the steps that call it are no longer cache hits.
NEW_HELPER = """
def scale(x, factor):
    return x * factor + 100

results["edited"] = summary(notebook_pipeline(n=4))
print(json.dumps(results))
"""


def run_notebook(folder: Path, cells: list[str], timeout: int = 300) -> Any:
    """Execute ``cells`` in a fresh IPython kernel started in ``folder``; returns the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    return nb


def printed_json(nb: Any) -> dict[str, Any]:
    """The JSON the notebook's last cell printed."""
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_a_notebook_runs_its_steps_in_threads_and_in_processes(repo: Path) -> None:
    nb = run_notebook(repo, [IMPORTS, TYPES, HELPER, STEPS, RUN_THREADS, RUN_PROCESSES, NEW_HELPER])
    results = printed_json(nb)
    # make(3) with factor 3: 1 + 4 + 7; make(4): 1 + 4 + 7 + 10.
    assert results["thread"]["status"] == "completed"
    assert results["thread"]["total"] == 12
    assert results["process"]["status"] == "completed"
    assert results["process"]["total"] == 22
    assert set(results["process"]["statuses"].values()) == {"completed"}
    # The same cells in a later run are cache hits, as module code would be.
    assert set(results["process_cached"]["statuses"].values()) == {"cached"}
    assert results["process_cached"]["total"] == 22
    # Editing the helper another cell defines changes the steps' code.
    assert results["edited"]["statuses"]["make"] == "completed"
    assert results["edited"]["total"] == 100 * 4 + 3 * (0 + 1 + 2 + 3)


def test_the_deployment_carries_only_the_notebooks_definitions(repo: Path) -> None:
    from conveyor import Client
    from conveyor.ir import load_deployment

    run_notebook(repo, [IMPORTS, TYPES, HELPER, STEPS, RUN_THREADS])
    store = Client().store
    pipeline_id = store.get_pipeline("notebook_pipeline").id
    deployment = load_deployment(store.get_deployment_json(store.latest_deployment_id(pipeline_id)))
    code = deployment.pipeline.notebook
    assert code is not None
    assert "def scale" in code and "class BoxMaterializer" in code and "OFFSET = 1" in code
    # Statements that do something stay in the notebook: a step process must not run the pipeline again.
    assert "notebook_pipeline()" not in code and "update_component" not in code
    assert deployment.pipeline.step("make").source == "conveyor_notebook:make"


# A class body that reads a value a call made: the call stays in the notebook, so the class cannot be built.
NEEDS_STATE = """
rows = list(range(3))

class Sized(BaseModel):
    size: int = len(rows)

@step
def count(s: Sized) -> int:
    return s.size

@pipeline
def stateful() -> None:
    count(Sized())

Client().update_component("orchestrator", "default", {"mode": "process"})
try:
    stateful()
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_cells_that_need_the_notebooks_state_fail_with_one_line(repo: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nb = run_notebook(repo, [IMPORTS, NEEDS_STATE])
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    assert "StepFailedError step 'count' failed" in text, text
    # The step process says why in one line, where the kernel's output goes (the terminal running Jupyter).
    lines = [line for line in capfd.readouterr().err.splitlines() if "fail outside the notebook" in line]
    assert lines == [
        "conveyor: error: the notebook cells of pipeline 'stateful' fail outside the notebook: NameError: name "
        "'rows' is not defined (keep what steps need in imports, definitions and constants; data loading belongs "
        "in a step)"
    ]


def test_a_plain_interactive_session_is_told_where_steps_can_live(repo: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys, types\n"
        "main = types.ModuleType('__main__')\n"
        "sys.modules['__main__'] = main\n"
        "exec('from conveyor import step\\n@step\\ndef f() -> int:\\n    return 1\\n', main.__dict__)\n"
        "from conveyor._source import source_of\n"
        "source_of(main.f.func)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert "defined in an interactive Python session" in out.stderr, out.stderr
    assert "Jupyter or IPython cell" in out.stderr


def test_notebook_code_runs_only_from_the_deployment_its_engine_named(
    repo: Path, examples_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store row whose cells were edited no longer matches its id: the step command refuses it, running nothing."""
    import os
    import sys

    import quickstart

    from conveyor import Client, deployment_for
    from conveyor.runtime._main import main

    deployment, _, _ = deployment_for(quickstart.quickstart)
    cells = f"open({str(repo / 'cells_ran')!r}, 'w').close()\n"
    with_cells = deployment.model_copy(update={"pipeline": deployment.pipeline.model_copy(update={"notebook": cells})})
    store = Client().store
    pipeline_id = store.get_or_create_pipeline("quickstart").id
    store.save_deployment(deployment.id, pipeline_id, with_cells.canonical_json())  # an edited row
    store.save_deployment(with_cells.id, pipeline_id, with_cells.canonical_json())
    os.environ["CONVEYOR_SOURCE_ROOT"] = str(examples_path)
    try:
        args = ["run-step", "--step", "load_data", "--run-key", "engine:1", "--deployment"]
        assert main([*args, deployment.id]) == 2
        assert "does not match its id" in capsys.readouterr().err
        assert not (repo / "cells_ran").exists()
        assert main([*args, with_cells.id]) == 0
        assert (repo / "cells_ran").exists()
    finally:
        del os.environ["CONVEYOR_SOURCE_ROOT"]
        os.environ.pop("CONVEYOR_STEP_ENTRYPOINT", None)
        sys.modules.pop("conveyor_notebook", None)
