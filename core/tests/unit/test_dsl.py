"""Tracing pipelines into IR, and the one-line errors for pipelines written wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from conveyor import pipeline, step
from conveyor.exceptions import ConfigError, DefinitionError, PipelineGraphError
from conveyor.ir import ArtifactInput, ParameterInput


@step
def numbers(n: int = 4) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step
def split(values: list[int]) -> tuple[Annotated[list[int], "even"], Annotated[list[int], "odd"]]:
    return [v for v in values if v % 2 == 0], [v for v in values if v % 2]


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def text() -> str:
    return "x"


@step
def side_effect() -> None:
    pass


class Config(BaseModel):
    rate: float = 0.5


@step
def configured(config: Config, values: list[int]) -> float:
    return config.rate * len(values)


def test_a_step_outside_a_pipeline_is_a_plain_call() -> None:
    assert numbers(3) == [0, 1, 2]
    assert split([1, 2, 3]) == ([2], [1, 3])


def test_trace_records_outputs_ids_and_edges() -> None:
    @pipeline(name="p")
    def p(n: int = 5) -> None:
        even, odd = split(numbers(n=n))
        total(even)
        total(odd)

    ir = p.trace(n=6)
    assert [s.id for s in ir.steps] == ["numbers", "split", "total", "total_2"]
    assert ir.parameters == {"n": 6}
    assert ir.step("numbers").inputs["n"] == ParameterInput(value=6, pipeline_parameter="n")
    assert ir.step("split").outputs.keys() == {"even", "odd"}
    assert ir.step("total_2").inputs["values"] == ArtifactInput(step="split", output="odd")
    assert ir.step("numbers").source.endswith(":numbers")
    assert ir.step("total").outputs["output"].type == "builtins.int"


def test_literal_equal_to_a_pipeline_parameter_is_not_linked_to_it() -> None:
    @pipeline
    def p(n: int = 4) -> None:
        numbers(n=n)
        numbers(n=4)

    ir = p.trace()
    assert ir.step("numbers").inputs["n"].pipeline_parameter == "n"
    assert ir.step("numbers_2").inputs["n"].pipeline_parameter is None


def test_after_adds_an_ordering_edge_and_with_options_sets_ids() -> None:
    @pipeline
    def p() -> None:
        first = side_effect()
        text.with_options(id="named")().after(first)
        total(numbers()).after(text)

    ir = p.trace()
    assert ir.step("named").after == ("side_effect",)
    assert ir.step("total").upstream() == ("named", "numbers")


def test_trace_is_deterministic() -> None:
    @pipeline
    def p(n: int = 3) -> None:
        split(numbers(n))

    assert p.trace().canonical_json() == p.trace().canonical_json()


def test_pydantic_parameters_are_recorded_as_json() -> None:
    @pipeline
    def p(config: Config = Config(rate=0.25)) -> None:
        configured(config, numbers())

    ir = p.trace()
    assert ir.parameters == {"config": {"rate": 0.25}}
    assert ir.step("configured").inputs["config"].value == {"rate": 0.25}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x) -> int: return 1", "input 'x' has no type annotation"),
        ("def f(x: int): return 1", "has no return annotation"),
        ("def f(*xs: int) -> int: return 1", r"takes \*xs"),
    ],
)
def test_badly_annotated_steps_are_refused(source: str, message: str) -> None:
    scope: dict[str, Any] = {}
    exec(source, scope)
    with pytest.raises(DefinitionError, match=message):
        step(scope["f"])


def test_unknown_argument() -> None:
    @pipeline
    def p() -> None:
        numbers(m=3)

    with pytest.raises(PipelineGraphError, match="step 'numbers': got an unknown argument 'm'"):
        p.trace()


def test_non_json_parameter() -> None:
    @pipeline
    def p() -> None:
        total(values=object())

    with pytest.raises(
        DefinitionError, match="parameter 'values' of step 'total' is a object, which is not JSON-serializable"
    ):
        p.trace()


def test_type_mismatch_between_steps() -> None:
    @pipeline
    def p() -> None:
        total(text())

    with pytest.raises(
        PipelineGraphError, match="expects builtins.list\\[builtins.int\\] but text.output is builtins.str"
    ):
        p.trace()


def test_cycle_through_after() -> None:
    @pipeline
    def p() -> None:
        a = side_effect()
        b = side_effect().after(a)
        a.after(b)

    with pytest.raises(PipelineGraphError, match="cycle: "):
        p.trace()


def test_passing_all_outputs_of_a_multi_output_step() -> None:
    @pipeline
    def p() -> None:
        total(split(numbers()))

    with pytest.raises(PipelineGraphError, match="unpack them"):
        p.trace()


def test_a_pipeline_with_no_step() -> None:
    @pipeline
    def p() -> None:
        pass

    with pytest.raises(DefinitionError, match="calls no step"):
        p.trace()


def test_run_config_yaml_applies_parameters_and_settings(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "enable_cache: false\nparameters: {n: 7}\nsteps:\n  total:\n    retries: 3\n    settings: {airflow: {pool: small}}\n"
    )

    @pipeline
    def p(n: int = 2) -> None:
        total(numbers(n))

    ir = p.with_options(config_path=config).trace()
    assert ir.parameters == {"n": 7}
    assert ir.settings.enable_cache is False
    assert ir.step("total").settings.retries == 3
    assert ir.step("total").settings.extra == {"airflow": {"pool": "small"}}


@pytest.mark.parametrize(
    ("text_", "message"),
    [
        ("steps: [unclosed", "is not valid YAML at line 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("steps:\n  nope: {retries: 1}\n", "unknown step 'nope'"),
        ("parameters: {zzz: 1}\n", "unknown parameter 'zzz'"),
        ("steps:\n  total:\n    parameters: {zzz: 1}\n", "unknown parameter 'zzz' of step 'total'"),
        ("enable_cashe: true\n", "unknown key 'enable_cashe'"),
        ("steps:\n  total: {retries: -1}\n", "steps.total.retries"),
    ],
)
def test_bad_run_configs(tmp_path: Path, text_: str, message: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text_)

    @pipeline
    def p() -> None:
        total(numbers())

    with pytest.raises(ConfigError, match=message):
        p.with_options(config_path=config).trace()
