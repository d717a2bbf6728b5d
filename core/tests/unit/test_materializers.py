"""Built-in materializers round-trip exactly; custom ones register by subclass."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from conveyor.exceptions import MaterializerError
from conveyor.materializers import (
    BaseMaterializer,
    BuiltInMaterializer,
    BytesMaterializer,
    PickleMaterializer,
    PydanticMaterializer,
    registry,
)
from conveyor.stores import LocalArtifactStore


def _round_trip(tmp_path: Path, cls: type[BaseMaterializer], value: Any, data_type: type) -> tuple[Any, bytes]:
    store = LocalArtifactStore(str(tmp_path))
    uri = store.temp_uri(store.join("x"))
    store.makedirs(uri)
    cls(uri, store).save(value)
    loaded = cls(uri, store).load(data_type)
    raw = b"".join(Path(full).read_bytes() for _, full in store.files(uri))
    store.rmtree(uri)
    return loaded, raw


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text() | st.binary(max_size=20)
hashables = st.none() | st.booleans() | st.integers() | st.text() | st.tuples(st.integers(), st.text())
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=3)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=150, deadline=None)
@given(value=values)
def test_builtins_round_trip_exactly_and_deterministically(
    tmp_path_factory: pytest.TempPathFactory, value: Any
) -> None:
    tmp = tmp_path_factory.mktemp("m")
    loaded, raw = _round_trip(tmp, BuiltInMaterializer, value, type(value))
    assert _same(loaded, value)
    assert _round_trip(tmp, BuiltInMaterializer, value, type(value))[1] == raw


def test_sets_are_written_in_a_stable_order(tmp_path: Path) -> None:
    value = {f"item-{i}" for i in range(50)}
    first = _round_trip(tmp_path, BuiltInMaterializer, value, set)
    assert first[0] == value
    assert b'"item-0","item-1","item-10"' in first[1]


def test_bytes_and_pydantic(tmp_path: Path) -> None:
    class Point(BaseModel):
        x: float
        tags: list[str]

    assert _round_trip(tmp_path, BytesMaterializer, b"\x00\xff", bytes)[0] == b"\x00\xff"
    point = Point(x=1.5, tags=["a"])
    assert _round_trip(tmp_path, PydanticMaterializer, point, Point)[0] == point


def test_pickle_is_opt_in_and_warns(tmp_path: Path) -> None:
    class Thing:
        pass

    assert registry.find(Thing) is None
    with pytest.raises(MaterializerError, match="opt in to conveyor.materializers.PickleMaterializer"):
        registry.get(Thing, where="output 'x' of step 's'")
    with pytest.warns(UserWarning, match="saving a complex with pickle"):
        assert _round_trip(tmp_path, PickleMaterializer, 1 + 2j, complex)[0] == 1 + 2j


def test_a_subclass_registers_for_its_types() -> None:
    class Celsius(float):
        pass

    class CelsiusMaterializer(BaseMaterializer):
        ASSOCIATED_TYPES = (Celsius,)

    assert registry.find(Celsius) is CelsiusMaterializer
    assert registry.find(int) is BuiltInMaterializer  # found through the entry point


def test_entry_point_materializers_load_lazily_and_broken_ones_are_skipped(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests_support import fake_distribution

    fake_distribution(
        tmp_path,
        "widgets",
        {
            "conveyor.materializers": {
                "widget_types.Widget": "widget_mat:WidgetMaterializer",
                "widget_types.Gadget": "missing_module:Nope",
            }
        },
        modules={
            "widget_types": "class Widget:\n    pass\nclass Gadget:\n    pass\n",
            "widget_mat": (
                "from conveyor.materializers import BaseMaterializer\nimport widget_types\n"
                "class WidgetMaterializer(BaseMaterializer):\n    ASSOCIATED_TYPES = (widget_types.Widget,)\n"
            ),
        },
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from conveyor.materializers import registry; import widget_types;"
        "assert 'widget_mat' not in sys.modules; registry.find(int); assert 'widget_mat' not in sys.modules;"
        "print(registry.find(widget_types.Widget).__name__, registry.find(widget_types.Gadget))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["WidgetMaterializer", "None"]
    assert "skipped materializer plugin missing_module:Nope from widgets" in out.stderr


# -- which classes count as the project's own code -------------------------------------
def test_project_classes_are_those_defined_under_a_source_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.materializers import is_project_class
    from tests_support import write_module

    write_module(tmp_path, "proj_model", "class Scaler:\n    class Inner:\n        pass\n\ndef helper():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    roots = [str(tmp_path)]
    assert is_project_class("proj_model.Scaler", roots)
    assert is_project_class("proj_model.Scaler.Inner", roots)
    assert not is_project_class("proj_model.helper", roots)  # functions need explicit trust
    assert not is_project_class("proj_model.Missing", roots)
    assert not is_project_class("proj_model.Scaler", [str(tmp_path / "elsewhere")])


LIBRARY_CLASSES = [
    "subprocess.Popen",
    "collections.OrderedDict",
    "pathlib.Path",
    "os.PathLike",
    "pydantic.BaseModel",
    "sqlalchemy.engine.Engine",
    "click.Command",
]


@settings(max_examples=80, deadline=None)
@given(name=st.text(max_size=60) | st.sampled_from(LIBRARY_CLASSES), library=st.sampled_from(LIBRARY_CLASSES))
def test_no_library_class_is_project_code_even_when_the_root_is_everything(name: str, library: str) -> None:
    from conveyor.materializers import is_project_class

    # A worker running in "/" must not trust the standard library or installed packages.
    assert not is_project_class(library, ["/"])
    assert isinstance(is_project_class(name, ["/"]), bool)  # any text: an answer, never an exception
