"""Pipeline and step names as Airflow keys."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

import conveyor_airflow
from conveyor_airflow import airflow_key, dag_id_for, task_id_for
from conveyor_testing import assert_facade_complete

KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_valid_names_stay_as_they_are() -> None:
    assert dag_id_for("fan_out") == "fan_out"
    assert task_id_for("branch_2") == "branch_2"
    assert task_id_for("train.v2-final") == "train.v2-final"


def test_other_characters_become_underscores() -> None:
    assert dag_id_for("my pipeline/v2") == "my_pipeline_v2"
    assert task_id_for("café") == "caf_"


@settings(database=None)
@given(st.text(min_size=0, max_size=400))
def test_any_name_maps_to_a_valid_stable_key(name: str) -> None:
    key = airflow_key(name, 200)
    assert KEY.match(key) and len(key) <= 200
    assert airflow_key(name, 200) == key


def test_long_names_end_in_a_hash_of_the_whole_name() -> None:
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(dag_id_for(a)) == 200 and dag_id_for(a) != dag_id_for(b)
    assert len(task_id_for(a)) == 250


def test_all_is_complete() -> None:
    assert_facade_complete(conveyor_airflow)
    public = {n for n in dir(conveyor_airflow) if not n.startswith("_")}
    assert public == set(conveyor_airflow.__all__)
    assert conveyor_airflow.__all__ == sorted(conveyor_airflow.__all__)
