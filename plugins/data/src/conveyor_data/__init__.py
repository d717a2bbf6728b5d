"""conveyor materializers and views for numpy, pandas, pyarrow and scikit-learn.

conveyor finds these materializers through the entry point group
``conveyor.materializers`` and imports each library's module only when a value
of that library's type is saved or loaded; ``import conveyor_data`` itself
imports none of the libraries.

Install a library's part from the root folder of a conveyor clone with
``pip install ./core "./plugins/data[numpy]"`` (likewise ``pandas``, ``pyarrow``,
``sklearn``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# name -> module that defines it, imported on first use.
_EXPORTS = {
    "ArrowMaterializer": "conveyor_data._arrow",
    "NumpyMaterializer": "conveyor_data._numpy",
    "PandasMaterializer": "conveyor_data._pandas",
    "SklearnMaterializer": "conveyor_data._sklearn",
    "SklearnPickleMaterializer": "conveyor_data._sklearn",
    "trust_skops_types": "conveyor_data._sklearn",
}

__all__ = [
    "ArrowMaterializer",
    "NumpyMaterializer",
    "PandasMaterializer",
    "SklearnMaterializer",
    "SklearnPickleMaterializer",
    "trust_skops_types",
]

if TYPE_CHECKING:
    from conveyor_data._arrow import ArrowMaterializer
    from conveyor_data._numpy import NumpyMaterializer
    from conveyor_data._pandas import PandasMaterializer
    from conveyor_data._sklearn import SklearnMaterializer, SklearnPickleMaterializer, trust_skops_types


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor_data' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
