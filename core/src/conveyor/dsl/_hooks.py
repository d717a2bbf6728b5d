"""Hooks: functions a step or pipeline names to run when it succeeds or fails.

A hook is referred to by its source (``package.module:function``), like a
step, so that whichever process supervises a step (the step's own process,
the local orchestrator, an engine's finish task) can load it. A hook takes
the :class:`~conveyor.runtime.HookContext` as its only argument, or nothing.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.exceptions import ConfigError, DefinitionError

HookSpec = Any
"""What ``on_success=`` / ``on_failure=`` accept: a function, a ``"module:function"`` source, or a list of them."""

EVENTS = ("success", "failure")
"""The events a hook can be attached to (``on_success``, ``on_failure``)."""


def hook_sources(value: HookSpec, where: str) -> tuple[str, ...]:
    """The sources of the hooks given as ``on_success=`` / ``on_failure=``, in order.

    Functions are turned into their sources now; sources given as text are
    checked for their shape here and loaded when the pipeline is traced.

    Raises:
        DefinitionError: a value is neither a module-level function nor a ``module:function`` text.
    """
    from conveyor._source import source_of
    from conveyor.ir import hook_source_problem, shown

    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    sources: list[str] = []
    for item in items:
        if isinstance(item, str):
            problem = hook_source_problem(item)
            if problem is not None:
                raise DefinitionError(f"{where}: hook {shown(item)} {problem}", "give a function or 'module:function'")
            sources.append(item)
        elif callable(item):
            check_hook(item, getattr(item, "__qualname__", repr(item)), where=where)
            sources.append(source_of(item))
        else:
            raise DefinitionError(
                f"{where}: a hook must be a function or 'module:function', not {type(item).__name__}",
                "pass the function itself: on_failure=my_hook",
            )
    return tuple(sources)


def check_hook(func: Any, source: str, *, where: str = "hook") -> Callable[..., Any]:
    """Return ``func`` if it can be a hook: a Python function of your code or of an installed package.

    Functions of the standard library and builtins are refused: a hook
    named in a stored deployment is data, and must not become a way to
    call ``os.system`` or ``shutil.rmtree`` with the hook's context.

    Raises:
        DefinitionError: it is not such a function, or it takes more than one required argument.
    """
    if not inspect.isfunction(func):
        raise DefinitionError(f"{where}: hook {source!r} is not a function", "hooks are plain functions: def hook(ctx)")
    top = (getattr(func, "__module__", "") or "").split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        raise DefinitionError(
            f"{where}: hook {source!r} is a function of the standard library",
            "hooks are functions of your code or of an installed package",
        )
    required = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if len(required) > 1 or any(p.kind == p.KEYWORD_ONLY for p in required):
        raise DefinitionError(
            f"{where}: hook {source!r} takes {len(required)} required arguments",
            "a hook takes the hook context as its only argument, or nothing: def hook(ctx)",
        )
    return func


def load_hook(source: str, *, where: str = "hook") -> Callable[..., Any]:
    """Import a hook by its source and check it (see :func:`check_hook`).

    Raises:
        DefinitionError: it does not import, or is not a function that can be a hook.
    """
    from conveyor._source import load_source
    from conveyor.ir import hook_source_problem, shown

    problem = hook_source_problem(source)
    if problem is not None:
        raise DefinitionError(f"{where}: hook {shown(source)} {problem}")
    return check_hook(load_source(source), source, where=where)


def check_hook_sources(sources: Sequence[str], where: str) -> None:
    """Load every hook of a traced pipeline once, so that a wrong one fails before anything runs.

    Raises:
        ConfigError: a hook does not import or cannot be a hook.
    """
    for source in sources:
        try:
            load_hook(source, where=where)
        except DefinitionError as exc:
            raise ConfigError(exc.message, exc.hint) from None


def call_hook(func: Callable[..., Any], context: Any) -> Any:
    """Call a hook with the context, or with nothing when it takes no argument."""
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return func(context) if params else func()
