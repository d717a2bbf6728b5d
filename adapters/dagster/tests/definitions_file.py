"""Reading a compiled definitions file without running it: its tables as values, its code as text."""

from __future__ import annotations

import ast
import datetime
from dataclasses import dataclass
from typing import Any

SHARED_CODE_MARK = "# -- the same in every file"
"""The line after which a definitions file holds only the template's own code."""

TABLE_CALLS = {"Param", "datetime.datetime.fromisoformat", "float"}
TABLE_NAMES = {"RUN_ID", "STEP", "IMAGE"}


@dataclass(frozen=True)
class Marker:
    """A marker of a command: ``RUN_ID``, ``STEP``, ``IMAGE`` or ``Param(name)``."""

    kind: str
    name: str | None = None


def split(source: str) -> tuple[str, str]:
    """``(tables, shared code)`` of a definitions file."""
    head, mark, tail = source.partition(SHARED_CODE_MARK)
    assert mark, "no shared code mark"
    return head, mark + tail


def check_table_node(node: ast.AST) -> None:
    """A table holds constants, containers, the markers and the few calls that build values; nothing else."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            assert ast.unparse(sub.func) in TABLE_CALLS, ast.unparse(sub.func)
            assert all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in sub.args), ast.unparse(sub)
            assert not sub.keywords, ast.unparse(sub)
        elif isinstance(sub, ast.Name):
            assert sub.id in TABLE_NAMES | {"Param", "datetime", "float"}, sub.id
        elif isinstance(sub, ast.Attribute):
            assert ast.unparse(sub) in {"datetime.datetime", "datetime.datetime.fromisoformat"}, ast.unparse(sub)
        else:
            allowed = (
                ast.Constant,
                ast.Dict,
                ast.List,
                ast.Tuple,
                ast.Load,
                ast.UnaryOp,
                ast.USub,
                ast.expr_context,
            )
            assert isinstance(sub, allowed), f"unexpected {type(sub).__name__}: {ast.unparse(sub)}"


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Name):
        return Marker(node.id.lower())
    if isinstance(node, ast.Call):
        func, arg = ast.unparse(node.func), ast.literal_eval(node.args[0])
        if func == "Param":
            return Marker("param", arg)
        if func == "float":
            return float(arg)
        return datetime.datetime.fromisoformat(arg)
    if isinstance(node, ast.Dict):
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(e) for e in node.elts)
    return ast.literal_eval(node)


def code_outside_tables(source: str) -> tuple[str, str]:
    """Everything of a file but its tables' values: the statements around them, and the shared code."""
    head, tail = split(source)
    statements = []
    for node in ast.parse(head).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id.isupper():
            statements.append(f"{target.id} = ...")
        else:
            statements.append(ast.dump(node))
    return "\n".join(statements), tail


def tables(source: str) -> dict[str, Any]:
    """The module-level assignments before the shared code, as values (markers as :class:`Marker`).

    Raises:
        AssertionError: a table holds anything but data.
    """
    head, _ = split(source)
    out: dict[str, Any] = {}
    for node in ast.parse(head).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                check_table_node(node.value)
                out[name] = _value(node.value)
    return out


def argv(command: list[Any], values: dict[str, str], params: dict[str, Any]) -> list[str]:
    """What an op makes of a command (as the file's ``_argv`` does)."""
    import json

    def text(part: Any) -> str:
        if isinstance(part, Marker):
            if part.kind == "param":
                return json.dumps(params[part.name], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            return values[part.kind]
        return part

    return ["".join(text(p) for p in (a if isinstance(a, tuple) else (a,))) for a in command]
