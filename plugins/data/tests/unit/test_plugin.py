"""The distribution's face: entry points named after the types they handle, lazy imports, the public names."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor

import conveyor_data
from conveyor.materializers import registry
from conveyor_testing import assert_facade_complete

GROUP = "conveyor.materializers"


def _ours() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP) if ep.value.startswith("conveyor_data.")}


def _qualname(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


@pytest.mark.parametrize(
    ("tp", "materializer"),
    [
        (np.ndarray, "NumpyMaterializer"),
        (np.generic, "NumpyMaterializer"),
        (pd.DataFrame, "PandasMaterializer"),
        (pd.Series, "PandasMaterializer"),
        (pa.Table, "ArrowMaterializer"),
        (pa.RecordBatch, "ArrowMaterializer"),
        (BaseEstimator, "SklearnMaterializer"),
    ],
)
def test_each_type_has_an_entry_point_named_after_its_qualified_name(tp: type, materializer: str) -> None:
    # The registry looks entry points up by type.__module__ + "." + type.__qualname__ along the MRO.
    assert _ours()[_qualname(tp)] == f"conveyor_data._{_module_of(materializer)}:{materializer}"


def _module_of(materializer: str) -> str:
    return {
        "NumpyMaterializer": "numpy",
        "PandasMaterializer": "pandas",
        "ArrowMaterializer": "arrow",
        "SklearnMaterializer": "sklearn",
    }[materializer]


def test_every_entry_point_loads_a_materializer_for_its_type() -> None:
    for name, value in _ours().items():
        module, _, attr = value.partition(":")
        cls = getattr(__import__(module, fromlist=[attr]), attr)
        handled = {_qualname(t) for t in cls.ASSOCIATED_TYPES}
        # pandas 2 spells the classes pandas.core.frame.DataFrame; pandas 3 pandas.DataFrame.
        other = {"pandas.core.frame.DataFrame": "pandas.DataFrame", "pandas.core.series.Series": "pandas.Series"}
        other.update({v: k for k, v in other.items()})
        assert name in handled or other.get(name) in handled, name


@pytest.mark.parametrize(
    ("value", "materializer"),
    [
        (np.zeros(3), "NumpyMaterializer"),
        (np.float32(1), "NumpyMaterializer"),  # before builtins.float in the MRO of np.float64 too
        (np.float64(1), "NumpyMaterializer"),
        (pd.DataFrame(), "PandasMaterializer"),
        (pd.Series(dtype=float), "PandasMaterializer"),
        (pa.table({}), "ArrowMaterializer"),
        (RandomForestRegressor(), "SklearnMaterializer"),
    ],
)
def test_the_registry_picks_our_materializer_for_values_of_each_library(value: object, materializer: str) -> None:
    assert registry.get(type(value), where="a test").__name__ == materializer


def test_importing_the_plugin_imports_none_of_the_libraries() -> None:
    code = (
        "import sys, conveyor_data\n"
        "heavy = [m for m in ('numpy', 'pandas', 'pyarrow', 'sklearn', 'skops', 'PIL') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_a_value_loads_only_its_own_library() -> None:
    code = (
        "import sys, pyarrow as pa\n"
        "from conveyor.materializers import registry\n"
        "registry.get(pa.Table, where='x')\n"
        "print(','.join(m for m in ('pandas', 'sklearn', 'skops', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_all_is_sorted_and_complete() -> None:
    assert_facade_complete(conveyor_data)
    assert conveyor_data.__all__ == sorted(conveyor_data.__all__)
    for name in conveyor_data.__all__:
        assert getattr(conveyor_data, name).__doc__, name
    assert set(conveyor_data._EXPORTS) == set(conveyor_data.__all__)
    with pytest.raises(AttributeError):
        conveyor_data.NoSuchThing  # noqa: B018
