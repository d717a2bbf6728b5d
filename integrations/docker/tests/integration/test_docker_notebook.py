"""A pipeline defined in notebook cells runs its steps in containers: the cells travel with the deployment."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CELLS = [
    """
    import json
    from pydantic import BaseModel
    from conveyor import pipeline, step
    from conveyor.materializers import BaseMaterializer
    """,
    """
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
    """,
    """
    import os

    @step
    def make(n: int, settings: Settings) -> Box:
        return Box(i * settings.factor for i in range(n))

    @step
    def total(box: Box) -> dict:
        # /.dockerenv: Docker puts it in every container.
        return {"sum": sum(box.items), "in_container": os.path.exists("/.dockerenv")}

    @pipeline
    def notebook_boxed(n: int = 4) -> None:
        total(make(n, Settings(factor=5)))
    """,
    """
    run = notebook_boxed.with_options(stack=STACK)()
    print(json.dumps({"status": run.status, "total": run.steps["total"].output.load()}))
    """,
]


def test_a_notebook_pipeline_runs_in_containers(docker_stack: str, repo: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cells = [textwrap.dedent(c).strip().replace("STACK", repr(docker_stack)) for c in CELLS]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(repo)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    result = json.loads(text.strip().splitlines()[-1])
    assert result == {"status": "completed", "total": {"sum": 5 * (0 + 1 + 2 + 3), "in_container": True}}
