"""``pandera_validator(schema=..., on_failure=...)``: a ready-made step that validates a DataFrame."""

from __future__ import annotations

import importlib
import inspect
from typing import Annotated, Any

import pandas as pd

from conveyor import step
from conveyor.exceptions import DefinitionError
from conveyor_pandera._report import ValidationReport
from conveyor_pandera._validate import act_on, validate_frame

_ON_FAILURE = ("fail", "warn")


def _load_schema(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@step
def validate_dataframe(
    data: pd.DataFrame, schema: str, on_failure: str = "fail"
) -> Annotated[ValidationReport, "report"]:
    """Validate ``data`` against the pandera schema at ``schema`` (``module:name``); return the report.

    With ``on_failure="fail"`` an invalid frame fails the step in one line that
    names the failing checks; with ``"warn"`` the step warns and goes on. Either
    way the full report is in the step's logs.
    """
    report = validate_frame(data, _load_schema(schema))
    act_on(report, on_failure)
    return report


def _schema_path(schema: Any, caller_globals: dict[str, Any]) -> str:
    # The step process imports the schema again by name: it must live at a module's top level.
    if isinstance(schema, str):
        if ":" not in schema:
            raise DefinitionError(f"schema {schema!r} is not a 'module:name' path", "e.g. schema='mypkg.schemas:Trips'")
        return schema
    if isinstance(schema, type) and "<locals>" not in schema.__qualname__:
        return f"{schema.__module__}:{schema.__qualname__}"
    module = caller_globals.get("__name__")
    for name, value in caller_globals.items():
        if value is schema and module:
            return f"{module}:{name}"
    raise DefinitionError(
        "pandera_validator needs a schema defined at the top level of a module",
        "define the DataFrameModel or DataFrameSchema at module level, or pass its 'module:name'",
    )


class PanderaValidator:
    """A validation step bound to one schema; call it inside a pipeline with the DataFrame."""

    def __init__(self, schema_path: str, on_failure: str, id: str | None) -> None:
        self.schema = schema_path
        self.on_failure = on_failure
        self.step = validate_dataframe if id is None else validate_dataframe.with_options(id=id)

    def __call__(self, data: Any) -> Any:
        return self.step(data, schema=self.schema, on_failure=self.on_failure)


def pandera_validator(*, schema: Any, on_failure: str = "fail", id: str | None = None) -> PanderaValidator:
    """A step that validates a pandas DataFrame against a pandera schema; its output is a :class:`ValidationReport`.

    Args:
        schema: a ``pandera.DataFrameModel`` class or ``DataFrameSchema`` defined at a module's top level,
            or its ``"module:name"``.
        on_failure: ``"fail"`` (the step fails in one line naming the failing checks) or ``"warn"``.
        id: the step's id in the pipeline (default: ``validate_dataframe``).

    Raises:
        DefinitionError: an unknown ``on_failure``, or a schema the step process could not import.
    """
    if on_failure not in _ON_FAILURE:
        raise DefinitionError(f"on_failure must be 'fail' or 'warn', not {on_failure!r}")
    frame = inspect.currentframe()
    caller = frame.f_back.f_globals if frame is not None and frame.f_back is not None else {}
    return PanderaValidator(_schema_path(schema, caller), on_failure, id)
