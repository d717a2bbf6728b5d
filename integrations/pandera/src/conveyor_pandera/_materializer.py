"""Stores a ValidationReport as JSON, with Markdown and HTML views (``conveyor artifact show``)."""

from __future__ import annotations

from typing import Any, ClassVar

from conveyor import BaseMaterializer
from conveyor_pandera._report import ValidationReport


class ValidationReportMaterializer(BaseMaterializer):
    """A validation report: its JSON, a Markdown view and an HTML view."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (ValidationReport,)

    def save(self, data: Any) -> None:
        with self.open("report.json", "wb") as f:
            f.write(data.model_dump_json().encode())

    def load(self, data_type: type) -> Any:
        with self.open("report.json", "rb") as f:
            return ValidationReport.model_validate_json(f.read())

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"valid": data.valid, "rows": data.rows, "failure_count": data.failure_count}

    def save_visualizations(self, data: Any) -> dict[str, str]:
        views = {}
        for name, kind, text in (
            ("report.md", "markdown", data.to_markdown()),
            ("report.html", "html", data.to_html()),
        ):
            with self.open(name, "wb") as f:
                f.write(text.encode())
            views[self.path(name)] = kind
        return views
