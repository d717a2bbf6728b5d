"""Helpers the materializers share: sizes on disk, and small HTML and Markdown views."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from typing import Any

from conveyor.materializers import BaseMaterializer

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}"
    "caption{text-align:left;font-weight:bold;padding:.3em 0}"
    "p.note{color:#666;font-size:.85em}"
)

PREVIEW_ROWS = 10
"""Rows (or values) shown in previews."""


def size_on_disk(materializer: BaseMaterializer, names: Iterable[str]) -> int:
    """Bytes taken by the named files of an artifact folder."""
    store = materializer.artifact_store
    total = 0
    for name in names:
        uri = materializer.path(name)
        local = store.local_path(uri)
        total += os.path.getsize(local) if local is not None else int(store.fs.size(uri))
    return total


def write_text(materializer: BaseMaterializer, name: str, text: str) -> str:
    """Write a UTF-8 text file into the artifact folder; returns its uri."""
    with materializer.open(name, "wb") as f:
        f.write(text.encode("utf-8"))
    return materializer.path(name)


def html_page(title: str, body: str) -> str:
    """A small self-contained HTML page."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h2>{html.escape(title)}</h2>\n{body}\n</body></html>\n"
    )


def html_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None, left: int = 1
) -> str:
    """An HTML table of already formatted cells; the first ``left`` columns are left-aligned."""

    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{html.escape(str(value))}</{tag}>"

    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown pipe table of already formatted cells."""

    def esc(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns
