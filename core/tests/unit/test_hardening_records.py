"""Stored records are data, never instructions: an edited row runs no code and reads no file outside the store."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import MaterializerError, StoreError
from tests_support import fails, ok, write_module

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def make() -> Annotated[list[int], "numbers"]:
    print("a line of the step's log")
    return [1, 2, 3]

@pipeline(name="records")
def records():
    make()
"""


class _Boom:
    """Unpickling this writes a file: proof that loading ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.rename, (self.marker + ".src", self.marker))


def _run(repo: Path) -> tuple[object, object]:
    write_module(repo, "records_pipe", PIPE)
    import records_pipe

    run = records_pipe.records()
    step = run.steps["make"]
    return step, step.outputs["numbers"]


def _edit(table: str, where: str, **values: object) -> None:
    store = Client().store
    with store.write() as conn:  # what anyone with write access to the shared database can do
        conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{k} = :{k}' for k in values)} WHERE {where}"), values)


def _planted_pickle(repo: Path, artifact: object) -> Path:
    marker = repo / "pwned"
    (repo / "pwned.src").write_text("x")
    with open(Path(artifact.uri) / "data.pkl", "wb") as f:
        pickle.dump(_Boom(str(marker)), f)
    return marker


@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_an_edited_materializer_row_does_not_unpickle_attacker_data(repo: Path) -> None:
    _, artifact = _run(repo)
    marker = _planted_pickle(repo, artifact)
    _edit(
        "artifact_versions", f"id = '{artifact.id}'", materializer="conveyor.materializers._builtin:PickleMaterializer"
    )
    with pytest.raises(MaterializerError, match="runs code stored in the artifact"):
        Client().get_artifact(artifact.id).load()
    error = fails("artifact", "show", artifact.id)
    assert "refusing to load materializer" in error
    assert not marker.exists()


@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_pickle_loads_when_the_reader_opts_in(repo: Path) -> None:
    _, artifact = _run(repo)
    with open(Path(artifact.uri) / "data.pkl", "wb") as f:
        pickle.dump([4, 5], f)
    _edit(
        "artifact_versions", f"id = '{artifact.id}'", materializer="conveyor.materializers._builtin:PickleMaterializer"
    )
    assert Client().get_artifact(artifact.id).load(allow_unsafe=True) == [4, 5]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("materializer", "os:system", "neither installed for conveyor nor part of this project's code"),
        ("materializer", "subprocess:Popen", "neither installed for conveyor nor part of this project's code"),
        # conveyor's own code is trusted like any installed plugin's; a class of it that is no materializer is not
        ("materializer", "conveyor.client:Client", "it is not a materializer"),
        ("materializer", "records_pipe:records", "it is not a materializer"),
        ("data_type", "antigravity:x", "its module is neither loaded here nor part of this project's code"),
    ],
)
@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_an_edited_row_naming_other_code_is_refused(repo: Path, column: str, value: str, message: str) -> None:
    _, artifact = _run(repo)
    _edit("artifact_versions", f"id = '{artifact.id}'", **{column: value})
    with pytest.raises(MaterializerError, match=message):
        Client().get_artifact(artifact.id).load()


@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_a_logs_uri_pointing_outside_the_store_is_refused(repo: Path) -> None:
    step, _ = _run(repo)
    _edit("step_runs", f"id = '{step.id}'", logs_uri="/etc/passwd")
    run_name = Client().get_pipeline("records").last_run.name
    error = fails("run", "describe", run_name, "--logs", "make")
    assert "'/etc/passwd' is in no registered artifact store" in error
    assert "root:" not in error


@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_a_logs_uri_climbing_out_of_the_store_is_refused(repo: Path) -> None:
    step, _ = _run(repo)
    climbing = step.record.logs_uri.rsplit("/", 1)[0] + "/../../../../../../../../etc/passwd"
    _edit("step_runs", f"id = '{step.id}'", logs_uri=climbing)
    with pytest.raises(StoreError):
        Client().get_run(step.record.run_id).steps["make"].logs()


@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_an_artifact_uri_outside_the_store_is_refused(repo: Path) -> None:
    _, artifact = _run(repo)
    _edit("artifact_versions", f"id = '{artifact.id}'", uri=str(repo.parent))
    with pytest.raises(StoreError, match="is in no registered artifact store"):
        Client().get_artifact(artifact.id).load()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rel=st.one_of(st.sampled_from(["../../x", "/etc/passwd", "..", "a/../../b", "\x00", "a\\..\\..\\b"]), st.text()))
@pytest.mark.sql_store("edits rows of the SQLite file directly")
def test_view_paths_never_leave_the_artifact_folder(repo: Path, rel: str) -> None:
    if str(repo) not in _ARTIFACTS:  # one run per test, however many examples
        _ARTIFACTS[str(repo)] = _run(repo)[1]
    artifact = _ARTIFACTS[str(repo)]
    _edit("artifact_versions", f"id = '{artifact.id}'", visualizations=f'{{"{_json_escape(rel)}": "html"}}')
    try:
        views = Client().get_artifact(artifact.id).visualizations
    except StoreError:
        return
    for uri in views:
        assert os.path.realpath(uri).startswith(os.path.realpath(artifact.uri) + os.sep)


_ARTIFACTS: dict[str, object] = {}


def _json_escape(text: str) -> str:
    import json

    return json.dumps(text)[1:-1]


def test_the_cli_shows_good_records_normally(repo: Path) -> None:
    step, artifact = _run(repo)
    assert "[1, 2, 3]" in ok("artifact", "show", artifact.id)
    run_name = Client().get_run(step.record.run_id).name
    assert "a line of the step's log" in ok("run", "describe", run_name, "--logs", "make")
