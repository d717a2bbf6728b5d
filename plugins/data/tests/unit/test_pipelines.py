"""Arrays, frames, tables and models passed between steps of real pipelines on the local orchestrator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import write_module

from conveyor import Client
from conveyor.exceptions import MaterializerError, StepFailedError

PIPELINE = """
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from conveyor import pipeline, step


@step
def measure(n: int, shift: float) -> Annotated[np.ndarray, "features"]:
    return np.random.default_rng(7).normal(size=(n, 3)) + shift


@step
def tabulate(features: np.ndarray) -> tuple[Annotated[pd.DataFrame, "frame"], Annotated[pa.Table, "table"]]:
    features[0, 0] = 1e9  # changing an input in place must not change the stored artifact
    frame = pd.DataFrame(features, columns=["a", "b", "c"])
    frame["label"] = pd.Categorical(np.where(frame["a"] > frame["a"].median(), "high", "low"), categories=["low", "high"], ordered=True)
    frame.index = pd.date_range("2024-01-01", periods=len(frame), freq="h", tz="Europe/Paris", name="at")
    return frame, pa.Table.from_pandas(frame.reset_index(), preserve_index=False)


@step
def train(frame: pd.DataFrame) -> Annotated[LogisticRegression, "model"]:
    return LogisticRegression().fit(frame[["a", "b", "c"]].to_numpy(), frame["label"].cat.codes.to_numpy())


@step
def score(model: LogisticRegression, table: pa.Table) -> Annotated[float, "accuracy"]:
    frame = table.to_pandas()
    return float(model.score(frame[["a", "b", "c"]].to_numpy(), frame["label"].cat.codes.to_numpy()))


@pipeline(name="data_flow")
def data_flow(n: int = 200, shift: float = 0.0) -> None:
    features = measure(n, shift)
    frame, table = tabulate(features)
    score(train(frame), table)
"""


@pytest.fixture
def flow(repo: Path):
    write_module(repo, "data_flow", PIPELINE)
    import data_flow

    return data_flow.data_flow


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_values_pass_between_steps_and_come_back_exactly(repo: Path, flow, mode: str) -> None:
    Client().update_component("orchestrator", "default", {"mode": mode})
    run = flow(n=120)
    assert run.status == "completed", run.error
    steps = run.steps
    features = steps["measure"].outputs["features"].load()
    assert type(features) is np.ndarray and features.shape == (120, 3)
    assert np.array_equal(
        features, np.random.default_rng(7).normal(size=(120, 3))
    )  # the step's write stayed in its process
    frame = steps["tabulate"].outputs["frame"].load()
    assert str(frame.index.tz) == "Europe/Paris" and frame.index.freqstr == "h"
    assert frame["label"].cat.ordered and list(frame["label"].cat.categories) == ["low", "high"]
    assert frame.loc[frame.index[0], "a"] == 1e9
    table = steps["tabulate"].outputs["table"].load()
    assert isinstance(table, pa.Table) and table.num_rows == 120
    model = steps["train"].outputs["model"].load()
    assert model.n_features_in_ == 3
    assert 0.5 < steps["score"].outputs["accuracy"].load() <= 1.0
    materializers = {name: out.materializer for s in steps.values() for name, out in s.outputs.items()}
    assert materializers == {
        "features": "conveyor_data._numpy:NumpyMaterializer",
        "frame": "conveyor_data._pandas:PandasMaterializer",
        "table": "conveyor_data._arrow:ArrowMaterializer",
        "model": "conveyor_data._sklearn:SklearnMaterializer",
        "accuracy": "conveyor.materializers._builtin:BuiltInMaterializer",
    }


def test_a_second_run_is_cached_and_changed_data_runs_again(repo: Path, flow) -> None:
    first = flow(n=100)
    assert {s.status for s in first.steps.values()} == {"completed"}
    second = flow(n=100)
    assert {sid: s.status for sid, s in second.steps.items()} == dict.fromkeys(first.steps, "cached")
    # Equal bytes, equal hashes: the cache key of every step downstream is the same.
    assert [o.content_hash for s in second.steps.values() for o in s.outputs.values()] == [
        o.content_hash for s in first.steps.values() for o in s.outputs.values()
    ]
    third = flow(n=100, shift=1.0)  # new features: every step downstream runs again
    assert {s.status for s in third.steps.values()} == {"completed"}
    assert (
        third.steps["measure"].outputs["features"].content_hash
        != first.steps["measure"].outputs["features"].content_hash
    )


def test_an_upstream_step_that_writes_equal_data_keeps_the_rest_cached(repo: Path) -> None:
    write_module(
        repo,
        "equal_data",
        """
import numpy as np
import pandas as pd
from conveyor import pipeline, step

@step(enable_cache=False)
def load(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": [f"r{i}" for i in range(n)]})

@step
def total(frame: pd.DataFrame) -> float:
    return float(frame["x"].sum())

@pipeline
def equal_data(n: int = 10) -> None:
    total(load(n))
""",
    )
    import equal_data

    equal_data.equal_data()
    run = equal_data.equal_data()
    assert run.steps["load"].status == "completed"  # not cacheable: it ran again ...
    assert run.steps["total"].status == "cached"  # ... and wrote the same bytes


def test_visualizations_are_listed_and_exist(repo: Path, flow) -> None:
    run = flow(n=50)
    kinds = {}
    for step_run in run.steps.values():
        for name, artifact in Client().get_run(run.id).steps[step_run.step_id].outputs.items():
            views = Client().get_artifact(artifact.id).visualizations
            for uri in views:
                assert os.path.isfile(uri), uri
                assert uri.startswith(artifact.uri)
            kinds[name] = sorted(os.path.basename(u) + ":" + k for u, k in views.items())
    assert kinds == {
        "features": ["histogram.png:png", "summary.md:markdown"],
        "frame": ["preview.html:html", "summary.md:markdown"],
        "table": ["schema.html:html", "summary.md:markdown"],
        "model": ["model.html:html", "summary.md:markdown"],
        "accuracy": [],
    }


def test_views_are_not_part_of_the_content_hash(repo: Path, flow) -> None:
    run = flow(n=50)
    artifact = run.steps["measure"].outputs["features"]
    store = Client().artifact_store_for(artifact.uri)
    os.remove(os.path.join(artifact.uri, "summary.md"))
    os.remove(os.path.join(artifact.uri, "histogram.png"))
    assert store.content_hash(artifact.uri) == artifact.content_hash


def _conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor.cli", *args], capture_output=True, text=True, timeout=120)


def test_the_cli_shows_an_artifacts_views(repo: Path, flow) -> None:
    run = flow(n=30)
    frame = run.steps["tabulate"].outputs["frame"]
    result = _conveyor("artifact", "show", frame.id)
    assert result.returncode == 0, result.stderr
    assert "DataFrame: 30 rows x 4 columns" in result.stdout
    assert "| label | category | 0 |" in result.stdout
    features = run.steps["measure"].outputs["features"]
    result = _conveyor("artifact", "show", features.id)
    assert result.returncode == 0, result.stderr
    assert "| shape | 30 x 3 |" in result.stdout
    assert os.path.join(features.uri, "histogram.png") in result.stdout  # an image prints its path


def test_a_refused_value_fails_the_step_with_the_hint(repo: Path) -> None:
    write_module(
        repo,
        "objects",
        """
import numpy as np
from conveyor import pipeline, step

@step
def make() -> np.ndarray:
    return np.array([{"a": 1}, None], dtype=object)

@pipeline
def objects() -> None:
    make()
""",
    )
    import objects

    with pytest.raises(StepFailedError) as err:
        objects.objects()
    assert "a numpy array of dtype object can be saved only by pickling it" in err.value.message
    assert "conveyor.materializers.PickleMaterializer" in err.value.hint


def test_opting_in_to_pickle_for_a_model(repo: Path) -> None:
    write_module(
        repo,
        "pickled",
        """
from sklearn.linear_model import LinearRegression
from conveyor import pipeline, step
from conveyor_data import SklearnPickleMaterializer

@step(output_materializers=SklearnPickleMaterializer)
def fit() -> LinearRegression:
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    model.note_ = 1 + 2j  # skops cannot hold this
    return model

@pipeline
def pickled() -> None:
    fit()
""",
    )
    import pickled

    with pytest.warns(UserWarning, match="with pickle"):
        run = pickled.pickled()
    artifact = run.steps["fit"].output
    assert artifact.materializer == "conveyor_data._sklearn:SklearnPickleMaterializer"
    assert artifact.metadata["format"] == "pickle"
    # Loading a pickle runs code it holds: a reader outside the pipeline opts in.
    with pytest.raises(MaterializerError, match="runs code stored in the artifact"):
        artifact.load()
    assert artifact.load(allow_unsafe=True).note_ == 1 + 2j
