"""Which materializers and types a process may load an artifact with.

An artifact record names its materializer and data type as ``module:qualname``.
Records live in a shared store, so they are data, not instructions: this
process imports and runs only a materializer it already trusts:

- one that is installed for conveyor (built in, an entry point of
  ``conveyor.materializers``, or in a package that provides conveyor entry
  points), or already defined in this process;
- one defined in the project's own code (a module whose file is under one of
  the given source roots: the code the pipeline runs anyway), or in the
  cells of the notebook this process runs;
- one the pipeline itself declared for that output (``output_materializers=``).

Materializers marked ``UNSAFE`` (pickle: loading runs code the file carries)
load only when the pipeline declared them for that output, or the caller opts
in (``allow_unsafe``). Data types follow the same rule, plus builtins.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Iterable
from typing import Any

from conveyor.exceptions import MaterializerError
from conveyor.materializers._base import BaseMaterializer, registry


def _module_file(module: str) -> str | None:
    """The file of a module, found without running it (its parent packages excepted)."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    top = module.split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if top == module:
        return spec.origin
    locations = list(spec.submodule_search_locations or [])
    return os.path.join(locations[0], *module.split(".")[1:]) if locations else None


def _under(path: str | None, roots: Iterable[str | os.PathLike[str]]) -> bool:
    if not path:
        return False
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


def _library_folders() -> list[str]:
    """Where installed libraries and the standard library live: never the project's own code,
    even when a source root holds them (a virtualenv inside the project, a worker running in ``/``)."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    found.update(getattr(site, "getsitepackages", lambda: [])())
    return sorted(found)


def _in_project(path: str | None, roots: Iterable[str | os.PathLike[str]]) -> bool:
    return _under(path, roots) and not _under(path, _library_folders())


def project_roots() -> list[str]:
    """Folders of this project's own code as this process sees them.

    The working folder, ``CONVEYOR_SOURCE_ROOT`` (set for step processes) and
    the repository's folder (when there is one; none is created).
    """
    from pathlib import Path

    from conveyor.constants import ENV_REPOSITORY, ENV_SOURCE_ROOT, REPOSITORY_DIR

    here = Path.cwd()
    roots = [str(here)]
    if os.environ.get(ENV_SOURCE_ROOT):
        roots.append(os.environ[ENV_SOURCE_ROOT])
    # The repository as Repository.find() finds it (this layer does not import it).
    named = os.environ.get(ENV_REPOSITORY)
    candidates = [Path(named)] if named else [here, *here.parents]
    for folder in candidates:
        if (folder / REPOSITORY_DIR).is_dir():
            roots.append(str(folder.resolve()))
            break
    return list(dict.fromkeys(roots))


def is_project_class(qualified_name: str, roots: Iterable[str | os.PathLike[str]] | None = None) -> bool:
    """Whether ``module.qualname`` names a class defined in this project's own code.

    That is: the module's file lies under one of ``roots`` (default:
    :func:`project_roots`) and not among installed libraries, and the class
    is really defined there under that name. Modules elsewhere are never
    imported to find out; a project module is (it is the code the pipeline
    runs anyway). Materializers that restore objects by name (skops) trust
    such classes. Functions are not classes: a stored model could wire any
    function of the project into the code that runs when it is used, so they
    still need explicit trust.

    Args:
        qualified_name: ``package.module.Class`` or ``package.module.Outer.Inner``, as skops lists types.
        roots: folders of the project's code.
    """
    import importlib
    import inspect

    if not isinstance(qualified_name, str) or not qualified_name or "\0" in qualified_name:
        return False
    roots = list(project_roots() if roots is None else roots)
    parts = qualified_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module, attrs = ".".join(parts[:cut]), parts[cut:]
        if not all(p.isidentifier() for p in parts[:cut]) or not _in_project(_module_file(module), roots):
            continue
        try:
            obj: Any = importlib.import_module(module)
            for attr in attrs:
                obj = getattr(obj, attr)
        except Exception:  # noqa: BLE001 - a name that does not resolve is not the project's
            continue
        if inspect.isclass(obj) and obj.__module__ == module and obj.__qualname__ == ".".join(attrs):
            return True
    return False


@functools.cache
def _builtin_sources() -> frozenset[str]:
    from conveyor.materializers import _builtin

    return frozenset(f"{_builtin.__name__}:{n}" for n, v in vars(_builtin).items() if isinstance(v, type))


def _is_installed(source: str) -> bool:
    # conveyor's own first: what nearly every artifact names, without listing the rest.
    if source in _builtin_sources():
        return True
    if any(str(ep.value) == source for ep in registry.entry_points().values()):
        return True
    return any(f"{c.__module__}:{c.__qualname__}" == source for c in registry.known())


def _plugin_packages() -> set[str]:
    """Top-level packages of the distributions installed as conveyor plugins (materializers or flavors)."""
    from importlib.metadata import entry_points

    from conveyor.constants import FLAVORS_GROUP, MATERIALIZERS_GROUP

    return {
        str(ep.value).split(":", 1)[0].split(".", 1)[0]
        for group in (MATERIALIZERS_GROUP, FLAVORS_GROUP)
        for ep in entry_points(group=group)
    }


def _refuse(what: str, source: str, why: str, hint: str) -> MaterializerError:
    return MaterializerError(f"refusing to load {what} {source!r}: {why}", hint)


def trusted_materializer(
    source: str,
    *,
    declared: Iterable[str] = (),
    allow_unsafe: bool = False,
    roots: Iterable[str | os.PathLike[str]] = (),
) -> type[BaseMaterializer]:
    """The materializer class a record names, if this process trusts it (see the module docstring).

    Args:
        source: ``module:qualname`` from the artifact record.
        declared: materializers the running pipeline declared for this artifact.
        allow_unsafe: the caller opts in to materializers marked ``UNSAFE`` (pickle).
        roots: folders holding the project's own code.

    Raises:
        MaterializerError: the record names something this process does not trust, or not a materializer.
    """
    from conveyor._notebook import NOTEBOOK_MODULE
    from conveyor._source import load_source

    declared = set(declared)
    module = source.partition(":")[0]
    known = (
        source in declared
        or _is_installed(source)
        or module.split(".", 1)[0] in _plugin_packages()  # an installed conveyor plugin's own code
        or _in_project(_module_file(module), roots)
        # The cells of the notebook this process runs (or of the deployment it runs steps of).
        or (module == NOTEBOOK_MODULE and module in sys.modules)
    )
    if not known:
        raise _refuse(
            "materializer",
            source,
            "it is neither installed for conveyor nor part of this project's code",
            "install the package that provides it, or load the artifact from the project that wrote it",
        )
    cls = load_source(source)
    if not (isinstance(cls, type) and issubclass(cls, BaseMaterializer)):
        raise _refuse("materializer", source, "it is not a materializer", "the artifact record was changed")
    if getattr(cls, "UNSAFE", False) and not (allow_unsafe or source in declared):
        raise _refuse(
            "materializer",
            source,
            "it runs code stored in the artifact (pickle)",
            "load it only if you trust whoever wrote the store: artifact.load(allow_unsafe=True) "
            "or `conveyor artifact show ID --allow-unsafe`",
        )
    return cls


def trusted_type(source: str, *, roots: Iterable[str | os.PathLike[str]] = (), also: Iterable[type] = ()) -> Any:
    """The data type a record names, if this process trusts it: builtins, modules already
    imported, the given types, or the project's own code.

    Raises:
        MaterializerError: the record names a type from somewhere else.
    """
    from conveyor._source import load_source

    for tp in also:
        if source == f"{tp.__module__}:{tp.__qualname__}":
            return tp
    module = source.partition(":")[0]
    if module == "builtins" or module in sys.modules or _in_project(_module_file(module), roots):
        return load_source(source)
    raise _refuse(
        "data type",
        source,
        "its module is neither loaded here nor part of this project's code",
        "import the module that defines it first, or pass the type: artifact.load(data_type=...)",
    )
