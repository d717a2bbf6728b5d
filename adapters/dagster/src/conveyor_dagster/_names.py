"""conveyor names as Dagster names: valid, stable and distinct.

Dagster names ops, jobs, schedules and sensors with ``[A-Za-z0-9_]+`` and
refuses Python keywords and a few words of its own; conveyor names may hold
any letter, ``-``, ``.`` and inner spaces. A name Dagster accepts is kept as
it is; any other is spelled with ``_`` for what Dagster refuses and ends in a
hash of the whole name, so two conveyor names never share a Dagster name.
"""

from __future__ import annotations

import hashlib
import re

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")

RESERVED = frozenset(
    {
        # Dagster's own: parameter names of its generated functions and type names.
        "context",
        "conf",
        "config",
        "meta",
        "arg_dict",
        "dict",
        "input_arg_dict",
        "output_arg_dict",
        "int",
        "str",
        "float",
        "bool",
        "input",
        "output",
        "type",
        # Python's keywords (the list of 3.10 to 3.13, fixed here so that names do not
        # depend on the interpreter that compiles).
        "False",
        "None",
        "True",
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
    }
)
"""Names Dagster refuses although their characters are valid."""

HASH_LENGTH = 10
"""Hex digits of the hash that ends a changed name (40 bits)."""


def is_dagster_name(name: str) -> bool:
    """Whether Dagster accepts ``name`` as the name of an op, a job, a schedule or a sensor."""
    return bool(name) and _NOT_NAME.search(name) is None and name not in RESERVED


def dagster_name(name: str) -> str:
    """The Dagster name of a conveyor name (a pipeline, a step id).

    ``split`` stays ``split``; ``load data`` becomes ``load_data_<hash>`` and
    ``input`` ``input_<hash>``, the hash being of the whole original name.
    """
    if is_dagster_name(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    return f"{_NOT_NAME.sub('_', name)}_{digest}"
