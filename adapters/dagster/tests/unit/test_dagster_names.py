"""conveyor names as Dagster names: valid for Dagster, stable, and never two for one."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor_dagster import dagster_name, is_dagster_name
from conveyor_testing.strategies import names

DAGSTER_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@settings(max_examples=300, database=None)
@given(names())
def test_every_conveyor_name_becomes_a_name_dagster_accepts(name: str) -> None:
    mapped = dagster_name(name)
    assert DAGSTER_NAME.match(mapped) and is_dagster_name(mapped)
    assert dagster_name(name) == mapped
    if is_dagster_name(name):
        assert mapped == name  # names Dagster takes as they are stay as they are


@settings(max_examples=300, database=None)
@given(st.lists(names(), min_size=2, max_size=8, unique=True))
def test_distinct_names_stay_distinct(values: list[str]) -> None:
    assert len({dagster_name(v) for v in values}) == len(values)


def test_names_that_differ_only_in_what_dagster_refuses_stay_apart() -> None:
    spelled = ["a b", "a-b", "a.b", "a_b", "a b ", "a  b"]
    mapped = [dagster_name(n) for n in spelled if n.strip() == n]
    assert len(set(mapped)) == len(mapped)
    assert dagster_name("a_b") == "a_b"


def test_a_changed_name_ends_in_the_hash_of_the_whole_name() -> None:
    digest = hashlib.sha256(b"load data").hexdigest()[:10]
    assert dagster_name("load data") == f"load_data_{digest}"
    assert dagster_name("input").startswith("input_") and dagster_name("class").startswith("class_")
    assert dagster_name("Input") == "Input"
