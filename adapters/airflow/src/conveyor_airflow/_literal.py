"""Python literals for generated code: the only way a value enters a DAG file.

Every value that a user controls (names, settings, paths) is written with
:func:`py_literal`, whose output Python reads back as the same value and can
never run anything. Source that the compiler itself assembles from such
literals is marked :class:`Code`; the template prints everything else through
:func:`py_literal`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.exceptions import ConfigError


class Code(str):
    """Python source assembled by the compiler (printed as is, never quoted)."""

    __slots__ = ()


def py_literal(value: Any) -> str:
    """The Python literal of plain data (str, int, float, bool, None, lists, tuples, dicts).

    Strings use ``repr``, which escapes quotes, newlines and every
    non-printable character, so the literal is one line and reads back
    as the same string.

    Raises:
        ConfigError: the value is not plain data, or a float is not finite.
    """
    if isinstance(value, Code):
        return str(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{value!r} cannot be written to an Airflow DAG", "use a finite number")
        return repr(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, Sequence):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    raise ConfigError(f"a {type(value).__name__} cannot be written to an Airflow DAG")


def call(func: str, *args: Any, **kwargs: Any) -> Code:
    """Source of ``func(*args, **kwargs)`` with every argument written as a literal."""
    parts = [py_literal(a) for a in args] + [f"{k}={py_literal(v)}" for k, v in kwargs.items()]
    return Code(f"{func}({', '.join(parts)})")
