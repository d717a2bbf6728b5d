"""What ZenML users write first: composed pipelines, run configs and their template, settings for absent components."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import ArtifactConfig, pipeline, step, write_run_configuration_template
from conveyor.exceptions import ConfigError, DefinitionError, PipelineGraphError
from tests_support import write_module


@step
def echo(value: int = 1) -> int:
    return value


COMPOSED = """
from typing import Annotated
from conveyor import pipeline, step

@step
def load(n: int) -> Annotated[list[int], "rows"]:
    return list(range(n))

@step
def clean(rows: list[int], drop: int = 0) -> Annotated[list[int], "clean"]:
    return [r for r in rows if r != drop]

@step
def train(rows: list[int]) -> int:
    return sum(rows)

@pipeline(name="feature_engineering")
def feature_engineering(n: int = 5, drop: int = 0):
    return clean(load(n), drop=drop)

@pipeline(name="training", enable_cache=False)
def training(n: int = 6):
    rows = feature_engineering(n=n, drop=2)
    train(rows)
    again = feature_engineering(n=3)
    train(again)
"""


@pytest.fixture
def composed(repo: Path):
    write_module(repo, "composed_pipe", COMPOSED)
    import composed_pipe

    return composed_pipe


def test_a_pipeline_called_inside_another_adds_its_steps(composed) -> None:
    ir = composed.training.trace()
    assert [s.id for s in ir.steps] == ["load", "clean", "train", "load_2", "clean_2", "train_2"]
    # The outer pipeline's parameter reaches the inner steps, and stays overridable.
    assert ir.step("load").inputs["n"].pipeline_parameter == "n"
    assert ir.step("load_2").inputs["n"].value == 3 and ir.step("load_2").inputs["n"].pipeline_parameter is None
    assert ir.step("train").inputs["rows"].step == "clean"
    run = composed.training(n=4)
    assert run.status == "completed"
    assert run.steps["train"].output.load() == 0 + 1 + 3  # 2 dropped
    assert run.steps["train_2"].output.load() == 0 + 1 + 2
    assert composed.feature_engineering().steps["clean"].output.load() == [1, 2, 3, 4]  # still runs alone


def test_composing_outside_a_pipeline_and_bad_arguments_are_one_line(composed) -> None:
    with pytest.raises(PipelineGraphError, match="can only be composed inside another pipeline"):
        composed.feature_engineering.compose()

    @pipeline(name="bad_outer")
    def bad_outer():
        composed.feature_engineering(nope=1)

    with pytest.raises(PipelineGraphError, match=r"pipeline 'feature_engineering' \(called inside another pipeline\)"):
        bad_outer.trace()


def test_a_pipeline_parameter_at_the_top_of_a_run_config_says_where_it_goes(composed, repo: Path) -> None:
    config = repo / "run.yaml"
    config.write_text("n: 30\nenable_cache: false\n")
    # A config that cannot be read is raised when the pipeline is traced (so a run still fires its failure hooks).
    with pytest.raises(ConfigError) as err:
        composed.training.with_options(config_path=config).trace()
    assert str(err.value) == (
        f"run config {config}: 'n' is a pipeline parameter; pipeline parameters go under parameters: "
        "(write parameters: {n: 30})"
    )
    config.write_text("enable_cahce: false\n")
    with pytest.raises(ConfigError, match="unknown key 'enable_cahce'.*did you mean 'enable_cache'"):
        composed.training.with_options(config_path=config).trace()


def test_zenml_placeholders_in_a_run_name_are_filled(composed, repo: Path) -> None:
    import re

    config = repo / "run.yaml"
    config.write_text('run_name: "nightly_{{date}}_{{time}}"\n')
    run = composed.feature_engineering.with_options(config_path=config)()
    assert re.fullmatch(r"nightly_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d{6}", run.name), run.name


def test_the_run_configuration_template_loads_back_and_changes_nothing(composed, repo: Path) -> None:
    path = write_run_configuration_template(composed.training, repo / "training.yaml")
    text = path.read_text()
    assert text.startswith("# Run config of pipeline 'training'.")
    assert "parameters:  # the pipeline's parameters\n  n: 6  # int\n" in text
    assert "  clean_2:  # composed_pipe:clean\n" in text
    assert "    #   drop: 2\n" in text and "    #   n: 6  # from pipeline parameter n\n" in text
    data = yaml.safe_load(text)
    assert data["parameters"] == {"n": 6} and set(data["steps"]) == {s.id for s in composed.training.trace().steps}
    configured = composed.training.with_options(config_path=path)
    assert configured.trace() == composed.training.trace()
    # A parameter without a default is needed to trace; it is written commented out.
    write_module(
        repo,
        "needs_n",
        "from conveyor import pipeline, step\n"
        "@step\ndef one(n: int) -> int:\n    return n\n"
        "@pipeline(name='needs_n')\ndef needs_n(n: int):\n    one(n)\n",
    )
    import needs_n

    with pytest.raises(DefinitionError, match="parameter 'n' has no default.*write_run_configuration_template"):
        needs_n.needs_n.write_run_configuration_template(repo / "n.yaml")
    text = needs_n.needs_n.write_run_configuration_template(repo / "n.yaml", n=4).read_text()
    assert "  # n: 4  # int (required: no default)\n" in text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    step_id=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40).filter(
        lambda s: __import__("conveyor.ir", fromlist=["x"]).name_problem(s) is None
    )
    | st.sampled_from(["yes", "No", "null", "on", "true", "1", "0.5", "a b", "x.y", "_"])
)
def test_any_step_id_survives_the_template(repo: Path, step_id: str) -> None:
    @pipeline(name="ids")
    def ids():
        echo.with_options(id=step_id)(value=2)

    path = write_run_configuration_template(ids, repo / "ids.yaml")
    assert list(yaml.safe_load(path.read_text())["steps"]) == [step_id]
    assert ids.with_options(config_path=path).trace() == ids.trace()


def test_artifact_config_names_an_output_and_is_checked() -> None:
    @step
    def fit() -> Annotated[int, ArtifactConfig(name="model")]:
        return 1

    @step
    def pair() -> tuple[Annotated[int, "a", ArtifactConfig(name="shared")], Annotated[int, ArtifactConfig(name="b")]]:
        return 1, 2

    assert fit.output_types == {"model": int} and fit.output_artifact_names == {"model": "model"}
    assert pair.output_types == {"a": int, "b": int}
    assert pair.output_artifact_names == {"a": "shared", "b": "b"}
    with pytest.raises(DefinitionError, match="artifact name 'a::b' contains ':'"):
        ArtifactConfig(name="a::b")


SETTINGS = """
from conveyor import pipeline, step

@step(settings={"airflow": {"pool": "small"}})
def one() -> int:
    return 1

@pipeline(name="with_settings", settings={"docker": {"requirements": ["scikit-learn"]}})
def with_settings():
    one()

if __name__ == "__main__":
    with_settings()
    with_settings()
"""


def test_settings_for_components_the_stack_lacks_are_reported_once(repo: Path) -> None:
    import os

    write_module(repo, "settings_pipe", SETTINGS)
    done = subprocess.run(
        [sys.executable, "settings_pipe.py"],
        cwd=repo,
        env={**os.environ, "CONVEYOR_REPOSITORY": str(repo), "CONVEYOR_QUIET": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "ignores settings" in line]
    assert warnings == [
        "conveyor: warning: stack 'default' ignores settings 'airflow' (step 'one'), "
        "'docker' (pipeline 'with_settings'): none of its components reads them"
    ]
