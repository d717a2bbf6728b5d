"""Python literals for the generated definitions file: the only way a value enters it.

:func:`py_literal` writes plain data as Python that reads back as the same
value and can never run anything; :func:`py_source` does the same over
several lines for the file's tables. Source the compiler assembles itself
(a marker such as ``RUN_ID``) is :class:`Code` and is written as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.exceptions import ConfigError

WIDTH = 110
"""Tables wider than this are written one item per line."""


class Code(str):
    """Python source assembled by the compiler (written as is, never quoted)."""

    __slots__ = ()


def py_literal(value: Any) -> str:
    """One line of Python that evaluates to ``value`` (str, int, float, bool, None, lists, tuples, dicts).

    Strings use ``repr``, which escapes quotes, line breaks (``\\n``, ``\\r``,
    U+2028, ...) and every other character that is not printable.

    Raises:
        ConfigError: the value is not plain data.
    """
    if isinstance(value, Code):
        return str(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, Sequence):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    raise ConfigError(f"a {type(value).__name__} cannot be written to a Dagster definitions file")


def py_source(value: Any, indent: int = 0) -> Code:
    """Like :func:`py_literal`, but dicts and lists that do not fit on a line get one item per line."""
    flat = py_literal(value)
    if indent + len(flat) <= WIDTH or isinstance(value, (str, Code)) or not isinstance(value, (Mapping, Sequence)):
        return Code(flat)
    if not value:
        return Code(flat)
    pad = " " * (indent + 4)
    if isinstance(value, Mapping):
        lines = [f"{pad}{py_literal(k)}: {py_source(v, indent + 4)}," for k, v in value.items()]
        return Code("{\n" + "\n".join(lines) + "\n" + " " * indent + "}")
    lines = [f"{pad}{py_source(v, indent + 4)}," for v in value]
    left, right = ("(", ")") if isinstance(value, tuple) else ("[", "]")
    return Code(left + "\n" + "\n".join(lines) + "\n" + " " * indent + right)
