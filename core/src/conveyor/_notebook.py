"""Code defined in Jupyter or IPython cells, made importable wherever a step runs.

Objects defined in a cell live in ``__main__``, which no step process can
import. Their source is recorded under the module name
:data:`NOTEBOOK_MODULE` instead, and the deployment carries the notebook's
definitions as text: the imports, functions, classes and plain assignments
of every cell run so far, in order (a later definition wins, as in the
notebook). Statements that do something (a pipeline call, loading data, a
loop) stay in the notebook: running the module in a step process must not
run the pipeline again.

In the notebook's own process the module is a view of ``__main__`` (so
threads see the live objects); a step process anywhere else builds the
module from the deployment's text.
"""

from __future__ import annotations

import ast
import sys
import types
from typing import Any

NOTEBOOK_MODULE = "conveyor_notebook"
"""The module name under which objects defined in notebook cells are recorded."""

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign)


def _shell() -> Any:
    """The running IPython shell, or None (a plain ``python`` REPL has none)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a half-imported IPython is no shell
        return None


def in_notebook() -> bool:
    """Whether this process runs cells of a Jupyter kernel or an IPython shell."""
    return _shell() is not None


def _cells() -> list[str]:
    """The code of the cells run so far, the running one included, as IPython transformed it (magics
    become ``get_ipython()`` calls)."""
    shell = _shell()
    if shell is None:
        return []
    history = getattr(getattr(shell, "history_manager", None), "input_hist_parsed", None)
    if history is None:
        history = shell.user_ns.get("In", [])
    return [cell for cell in history if isinstance(cell, str) and cell.strip()]


def _is_plain(value: ast.expr | None) -> bool:
    """An assigned value that computes nothing (no call, no await): a constant, a type alias."""
    if value is None:
        return True
    return not any(isinstance(node, ast.Call | ast.Await | ast.Yield | ast.YieldFrom) for node in ast.walk(value))


def _kept(statement: ast.stmt) -> bool:
    if isinstance(statement, _DEFINITIONS):
        return True
    if isinstance(statement, _ASSIGNMENTS):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return all(isinstance(t, ast.Name) for t in targets) and _is_plain(statement.value)
    return False


def definitions(cells: list[str]) -> list[tuple[str | None, str]]:
    """The kept statements of ``cells`` in order: ``(name it defines or None, source text)``.

    Cells that do not parse (a half-written cell that failed) are left out.
    """
    out: list[tuple[str | None, str]] = []
    for cell in cells:
        try:
            tree = ast.parse(cell)
        except SyntaxError:
            continue
        for statement in tree.body:
            if not _kept(statement):
                continue
            text = ast.get_source_segment(cell, statement, padded=True)
            if text is None:
                continue
            if isinstance(statement, _DEFINITIONS[2:]):
                decorators = [ast.get_source_segment(cell, d) or "" for d in statement.decorator_list]
                text = "".join(f"@{d}\n" for d in decorators) + text
                name: str | None = statement.name
            elif isinstance(statement, ast.Assign):
                name = statement.targets[0].id if isinstance(statement.targets[0], ast.Name) else None
            elif isinstance(statement, ast.AnnAssign):
                name = statement.target.id if isinstance(statement.target, ast.Name) else None
            else:
                name = None
            out.append((name, text))
    return out


def notebook_code() -> str:
    """The module text of the notebook's definitions so far (see the module docstring)."""
    parts = [text for _, text in definitions(_cells())]
    return "\n\n".join(parts) + "\n" if parts else ""


def definition_text(name: str) -> str | None:
    """The source of the latest top-level definition of ``name`` in the notebook, or None."""
    found = None
    for defined, text in definitions(_cells()):
        if defined == name:
            found = text
    return found


class _MainView(types.ModuleType):
    """:data:`NOTEBOOK_MODULE` inside the notebook's process: its names are those of ``__main__`` now."""

    def __getattr__(self, name: str) -> Any:
        main = sys.modules.get("__main__")
        try:
            return getattr(main, name)
        except AttributeError:
            raise AttributeError(f"the notebook defines no {name!r}") from None


def register_notebook_view() -> None:
    """Make :data:`NOTEBOOK_MODULE` importable in the notebook's own process."""
    if not isinstance(sys.modules.get(NOTEBOOK_MODULE), _MainView):
        sys.modules[NOTEBOOK_MODULE] = _MainView(NOTEBOOK_MODULE, "the definitions of this notebook's cells")


def install_notebook_code(code: str) -> None:
    """Build :data:`NOTEBOOK_MODULE` from a deployment's notebook text in a step process.

    The text is trusted as the pipeline's own code: callers run it only from
    a deployment whose content matches the id the engine gave them.
    """
    if isinstance(sys.modules.get(NOTEBOOK_MODULE), _MainView):
        return  # the notebook's own process: the live objects are already there
    module = types.ModuleType(NOTEBOOK_MODULE, "the definitions of a notebook's cells")
    module.__file__ = f"<{NOTEBOOK_MODULE}>"
    sys.modules[NOTEBOOK_MODULE] = module
    try:
        exec(compile(code, module.__file__, "exec"), module.__dict__)  # noqa: S102 - the pipeline's own code
    except BaseException:
        del sys.modules[NOTEBOOK_MODULE]
        raise
