"""Where user code lives: ``module:qualname`` sources and code hashes.

A step defined in a script run as ``python run.py`` lives in ``__main__``;
a fresh step process cannot import that, so such sources are recorded under
the script's own module name (``run``) and the script's folder becomes the
source root that the step entrypoint puts on ``sys.path``. One defined in a
Jupyter or IPython cell is recorded under :data:`conveyor._notebook.NOTEBOOK_MODULE`,
whose text the deployment carries (see :mod:`conveyor._notebook`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import sysconfig
import types
from functools import cache
from pathlib import Path
from typing import Any

from conveyor.exceptions import DefinitionError


def _main_module_name() -> str | None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name  # run with ``python -m package.module``
    path = getattr(main, "__file__", None)
    return Path(path).stem if path else None


def module_name(obj: Any) -> str:
    """The importable module name of an object, resolving ``__main__``."""
    name = getattr(obj, "__module__", None) or ""
    if name == "__main__":
        resolved = _main_module_name()
        if resolved is None:
            from conveyor._notebook import NOTEBOOK_MODULE, in_notebook, register_notebook_view

            if in_notebook():
                register_notebook_view()
                return NOTEBOOK_MODULE
            raise DefinitionError(
                f"{getattr(obj, '__qualname__', obj)!r} is defined in an interactive Python session",
                "define steps in a .py file, or in a Jupyter or IPython cell",
            )
        return resolved
    return name


def is_notebook_object(obj: Any) -> bool:
    """Whether ``obj`` was defined in a cell of this process's notebook (or IPython shell)."""
    if getattr(obj, "__module__", None) != "__main__" or _main_module_name() is not None:
        return False
    from conveyor._notebook import in_notebook

    return in_notebook()


def source_of(obj: Any) -> str:
    """``module:qualname`` of a function or class, importable from its source root."""
    qualname = getattr(obj, "__qualname__", None)
    if not qualname or "<locals>" in qualname:
        raise DefinitionError(
            f"{qualname or obj!r} is defined inside a function",
            "define steps, materializers and parameter models at module level",
        )
    return f"{module_name(obj)}:{qualname}"


def source_root_of(obj: Any) -> Path | None:
    """The folder to put on ``sys.path`` so that ``obj``'s module imports."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if not path:
        return None
    path = Path(path).resolve()
    name = module_name(obj)
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return root


def load_source(source: str) -> Any:
    """Import ``module:qualname`` and return the object."""
    if source == "builtins:NoneType":
        return type(None)  # a builtin type with no name in the builtins module
    module_path, _, qualname = source.partition(":")
    main = sys.modules.get("__main__")
    if module_path == "conveyor_notebook" and module_path not in sys.modules:
        from conveyor._notebook import in_notebook, register_notebook_view

        if in_notebook():
            register_notebook_view()  # a notebook loading what an earlier session of it ran
    if module_path == _main_module_name() and module_path not in sys.modules and main is not None:
        module = main  # the object is defined in the script that is running now
    else:
        try:
            module = importlib.import_module(module_path)
        except ImportError as exc:
            raise DefinitionError(
                f"cannot import {module_path!r} for {source!r}: {exc}",
                "run from the project folder, or set CONVEYOR_SOURCE_ROOT to the folder holding the code",
            ) from None
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise DefinitionError(f"{module_path!r} has no {qualname!r} (from {source!r})") from None
    return obj


@cache
def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    prefixes.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return tuple(sorted(os.path.realpath(p) for p in prefixes))


def _is_user_file(path: str | None) -> bool:
    if not path:
        return False
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return not any(real.startswith(p + os.sep) for p in _library_prefixes() if p != "/")


def _is_user_object(obj: Any) -> bool:
    if is_notebook_object(obj):
        return True
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None or module.__name__.split(".")[0] == "conveyor":
        return False
    return _is_user_file(getattr(module, "__file__", None))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _object_text(obj: Any) -> str:
    if is_notebook_object(obj):
        from conveyor._notebook import definition_text

        # The cell's text, as the deployment carries it: a class has no file to read it from.
        text = definition_text(getattr(obj, "__qualname__", "").split(".")[0])
        if text is not None:
            return text
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return repr(code.co_code) if code is not None else repr(obj)


_hash_cache: dict[int, str] = {}
_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, tuple, frozenset, list, dict, set)


def code_hash(func: Any) -> str:
    """Hash of a function's source and of the user code it refers to.

    Functions, classes and modules referenced by name that live in the
    user's files (not the standard library or installed packages) are
    followed, so editing a helper that a step calls changes the hash.
    """
    key = id(func)
    cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    seen: set[int] = set()
    pending: list[Any] = [func]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            path = getattr(obj, "__file__", None)
            if path and os.path.exists(path):
                digest.update(Path(path).read_bytes())
            continue
        digest.update(_object_text(obj).encode())
        target = getattr(obj, "__wrapped__", obj)
        code = getattr(target, "__code__", None)
        if code is None:
            continue
        scope = getattr(target, "__globals__", {})
        for name in sorted(_code_names(code)):
            ref = scope.get(name)
            ref = getattr(ref, "func", ref)  # a Step object wraps the function
            if ref is None or id(ref) in seen:
                continue
            if isinstance(ref, _CONSTANT_TYPES) and not isinstance(ref, type):
                # A module-level constant the step reads is part of what it computes.
                text = repr(ref)
                digest.update(f"{name}={text[:100_000]}".encode())
            elif isinstance(ref, types.ModuleType):
                if _is_user_file(getattr(ref, "__file__", None)) and not ref.__name__.startswith("conveyor"):
                    pending.append(ref)
            elif (inspect.isfunction(ref) or inspect.isclass(ref)) and _is_user_object(ref):
                pending.append(ref)
    result = digest.hexdigest()[:32]
    if not is_notebook_object(func):
        _hash_cache[key] = result  # a notebook's cells can be run again with new code; modules cannot
    return result
