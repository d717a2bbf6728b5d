"""Validating pandas DataFrames with pandera: one function shared by the flavor and the ready-made step."""

from __future__ import annotations

import logging
import sys
from typing import Any

from conveyor.exceptions import ConveyorError
from conveyor_pandera._report import MAX_FAILURES, FailedCheck, ValidationReport


class DataValidationError(ConveyorError):
    """A DataFrame failed its pandera schema."""


def schema_name(schema: Any) -> str:
    """A readable name of a pandera schema (a DataFrameModel class or a DataFrameSchema)."""
    if isinstance(schema, type):
        return schema.__name__
    return str(getattr(schema, "name", None) or type(schema).__name__)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return str(value)
    except (TypeError, ValueError):
        pass
    return str(value)


def validate_frame(data: Any, schema: Any) -> ValidationReport:
    """Validate a DataFrame against a pandera schema, collecting every failure (lazy validation).

    Raises:
        ConveyorError: ``data`` is not a pandas DataFrame.
    """
    import pandas as pd
    import pandera.errors

    if not isinstance(data, pd.DataFrame):
        raise ConveyorError(
            f"pandera validates pandas DataFrames, not {type(data).__name__}", "pass a pandas.DataFrame"
        )
    name = schema_name(schema)
    columns = [str(c) for c in data.columns]
    try:
        schema.validate(data, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        failures = []
        checks: list[str] = []
        for row in cases.to_dict("records"):
            column = _text(row.get("column"))
            check = str(row.get("check"))
            label = f"{column}: {check}" if column else check
            if label not in checks:
                checks.append(label)
            if len(failures) < MAX_FAILURES:
                failures.append(
                    FailedCheck(
                        check=check,
                        column=column,
                        index=_text(row.get("index")),
                        failure_case=_text(row.get("failure_case")),
                    )
                )
        return ValidationReport(
            schema_name=name,
            valid=False,
            rows=len(data),
            columns=columns,
            failed_checks=checks,
            failures=failures,
            failure_count=len(cases),
        )
    except pandera.errors.SchemaError as exc:  # raised before lazy collection (e.g. a wrong frame type)
        return ValidationReport(
            schema_name=name,
            valid=False,
            rows=len(data),
            columns=columns,
            failed_checks=[str(exc).splitlines()[0]],
            failure_count=1,
        )
    return ValidationReport(schema_name=name, valid=True, rows=len(data), columns=columns)


def act_on(report: ValidationReport, on_failure: str) -> None:
    """Fail (one line naming the failing checks) or warn about an invalid report; print it either way.

    Raises:
        DataValidationError: the report is invalid and ``on_failure`` is ``fail``.
    """
    if report.valid:
        return
    print(report.to_markdown())  # the full report goes to the step's logs
    if on_failure == "fail":
        raise DataValidationError(
            f"data validation failed: {report.summary()}", "see the step's logs for the failing rows"
        )
    # A warning in the step's logs (and its terminal), not a Python warning: the step goes on.
    line = f"WARNING: data validation failed: {report.summary()}"
    print(line, file=sys.stderr)
    logging.getLogger("conveyor_pandera").warning(line)
