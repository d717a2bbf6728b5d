"""The result of validating a DataFrame: which checks failed, on which rows."""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel, ConfigDict

# A report keeps this many failure cases; the count of all of them is kept too.
MAX_FAILURES = 200


class FailedCheck(BaseModel):
    """One failure case: a check that a column (or the frame) failed, and where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str
    column: str | None = None
    index: str | None = None
    """The row's index label, as text (None for a failure of the whole column or frame)."""
    failure_case: str | None = None
    """The failing value, as text."""


class ValidationReport(BaseModel):
    """What ``pandera_validator`` and the pandera data validator produce for one DataFrame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_name: str
    valid: bool
    rows: int
    columns: list[str]
    failed_checks: list[str] = []
    """Each failed check once, as ``column: check`` (what the step's one-line error names)."""
    failures: list[FailedCheck] = []
    """Failure cases, at most ``MAX_FAILURES``."""
    failure_count: int = 0
    """All failure cases, also those left out of ``failures``."""

    def summary(self) -> str:
        """One line: valid, or the failing checks."""
        if self.valid:
            return f"{self.schema_name}: valid ({self.rows} rows)"
        shown = ", ".join(self.failed_checks[:10]) + (" ..." if len(self.failed_checks) > 10 else "")
        return f"{self.schema_name}: {self.failure_count} failure case(s) in {self.rows} rows; failed checks: {shown}"

    def to_markdown(self) -> str:
        """The report as Markdown: the summary, the failed checks, and the failing rows."""
        lines = [f"# Validation of {self.schema_name}", "", f"**{'valid' if self.valid else 'INVALID'}**", ""]
        lines.append(f"{self.rows} rows, columns: {', '.join(self.columns) or '(none)'}")
        if not self.valid:
            lines += ["", "## Failed checks", ""]
            lines += [f"- {check}" for check in self.failed_checks]
            lines += ["", f"## Failure cases ({len(self.failures)} of {self.failure_count})", ""]
            lines += ["| column | check | row | value |", "| --- | --- | --- | --- |"]
            for f in self.failures:
                cells = [f.column or "-", f.check, f.index if f.index is not None else "-", f.failure_case or "-"]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """The report as a small HTML page."""
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(c))}</td>" for c in (f.column, f.check, f.index, f.failure_case))
            + "</tr>"
            for f in self.failures
        )
        checks = "".join(f"<li>{html.escape(c)}</li>" for c in self.failed_checks)
        state = "valid" if self.valid else "INVALID"
        return (
            f"<h2>Validation of {html.escape(self.schema_name)}: {state}</h2>"
            f"<p>{self.rows} rows; {self.failure_count} failure case(s)</p>"
            + (f"<h3>Failed checks</h3><ul>{checks}</ul>" if checks else "")
            + (
                "<table><tr><th>column</th><th>check</th><th>row</th><th>value</th></tr>" + rows + "</table>"
                if rows
                else ""
            )
        )


def _cell(value: Any) -> str:
    # Values come from the data: keep them to one table cell.
    return str(value).replace("|", "\\|").replace("\n", " ")[:200]
