"""Pipeline parameters an engine hands the step command as one JSON object (``--params``): a run's config."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import ConveyorError
from conveyor.runtime._main import _overrides, _param_items, main


def _step_command(*argv: str) -> int:
    """The step command as an engine's task runs it: a process of its own (on a server, it holds only its
    run's token while it runs)."""
    from conveyor.client import close_stores

    key = os.environ.get("CONVEYOR_API_KEY")
    try:
        return main(list(argv))
    finally:
        close_stores()
        if key is not None:
            os.environ["CONVEYOR_API_KEY"] = key


def _items(params: str | None, *param: str) -> list[str]:
    return _param_items(argparse.Namespace(param=list(param), params=params))


def test_a_run_config_overrides_the_recorded_parameters(repo: Path, examples_path: Path) -> None:
    import quickstart

    from conveyor import deployment_for
    from conveyor.orchestrators import LaunchContext

    deployment, stack, _ = deployment_for(quickstart.quickstart, parameters={"n": 4})
    stack.orchestrator.prepare(deployment, LaunchContext(store=Client().store, stack=stack, source_root=examples_path))
    os.environ["CONVEYOR_SOURCE_ROOT"] = str(examples_path)
    try:
        args = ["run-step", "--deployment", deployment.id, "--step", "load_data", "--run-key", "engine:1"]
        assert _step_command(*args, "--params", json.dumps({"n": 6})) == 0
        # An engine with no config for the run (Airflow renders None as null) keeps the recorded values.
        assert _step_command(*args[:-1], "engine:2", "--params", "null") == 0
        assert _step_command(*args[:-1], "engine:3", "--params", json.dumps({"m": 1})) == 2
    finally:
        del os.environ["CONVEYOR_SOURCE_ROOT"]
        os.environ.pop("CONVEYOR_STEP_ENTRYPOINT", None)
    runs = {r.name: r for r in Client().get_pipeline("quickstart").runs}
    by_key = {r.record.orchestrator_run_id or r.record.run_key: r for r in runs.values()}
    assert by_key["engine:1"].parameters == {"n": 6}
    assert by_key["engine:1"].steps["load_data"].output.load() == list(range(6))
    assert by_key["engine:2"].parameters == {"n": 4}
    assert "engine:3" not in by_key  # refused before a run was made


@pytest.mark.parametrize(
    ("conf", "shown"),
    [('{"n": "a\\ud800"}', "'a\\ud800'"), ('{"n": NaN}', "nan"), ('{"n": [1, -Infinity]}', "[1, -inf]")],
)
def test_a_value_no_run_can_record_is_refused_in_one_line(
    repo: Path, examples_path: Path, capsys: pytest.CaptureFixture[str], conf: str, shown: str
) -> None:
    """A run config may hold what its engine's reader gives (YAML's .nan, a lone surrogate): one line, no run."""
    import quickstart

    from conveyor import deployment_for
    from conveyor.orchestrators import LaunchContext

    deployment, stack, _ = deployment_for(quickstart.quickstart, parameters={"n": 4})
    stack.orchestrator.prepare(deployment, LaunchContext(store=Client().store, stack=stack, source_root=examples_path))
    os.environ["CONVEYOR_SOURCE_ROOT"] = str(examples_path)
    try:
        args = ["run-step", "--deployment", deployment.id, "--step", "load_data", "--run-key", "engine:1"]
        assert _step_command(*args, "--params", conf) == 2
    finally:
        del os.environ["CONVEYOR_SOURCE_ROOT"]
        os.environ.pop("CONVEYOR_STEP_ENTRYPOINT", None)
    # One line (after the line naming the server, when there is one).
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("conveyor: using ")]
    assert err == [
        f"conveyor: error: parameter 'n' of pipeline 'quickstart' is {shown}, which no run can record "
        "(give finite numbers and text without lone surrogates)"
    ]
    assert Client().get_pipeline("quickstart").runs == []
    # The engine's finish command still records the run (failed), with the values it could keep.
    finish = ["finish-run", "--deployment", deployment.id, "--run-key", "engine:1", "--params", conf]
    assert _step_command(*finish) == 0
    [run] = Client().get_pipeline("quickstart").runs
    assert run.status == "failed" and run.parameters == {"n": 4}


def test_unknown_names_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConveyorError, match=r"^--params must be a JSON object"):
        _items("[1, 2]")
    with pytest.raises(ConveyorError, match=r"^--params is not JSON"):
        _items("{n: 1}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.dictionaries(st.text(), json_values, max_size=4),
    st.dictionaries(st.text(min_size=1), json_values.filter(lambda v: not isinstance(v, str)), max_size=3),
)
def test_any_run_config_is_read_as_values_never_as_more_options(conf: dict, recorded: dict) -> None:
    """Whatever a user triggers a run with becomes ``{name: value}`` as given; the names are checked afterwards."""
    out = _overrides(_items(json.dumps(conf)), recorded)
    assert set(out) == set(conf)
    for name, value in conf.items():
        assert out[name] == value or out[name] == recorded.get(name)
