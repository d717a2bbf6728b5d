"""The rule every public package of conveyor keeps: a sorted, complete ``__all__`` whose names all resolve."""

from __future__ import annotations

from types import ModuleType


def _sorted(names: list[str]) -> bool:
    # Plain sort, or constants (ALL_CAPS) first and then the rest sorted: both are in use.
    return names == sorted(names) or names == sorted(names, key=lambda s: (not s.isupper(), s))


def assert_facade_complete(module: ModuleType) -> None:
    """Assert that ``module.__all__`` is sorted, complete, and that every name in it resolves.

    * sorted: plainly, or with ALL_CAPS constants first;
    * without duplicates;
    * complete: every public name the package defines itself (a module-level
      name without a leading underscore whose ``__module__`` lies in the
      package), and every name of a lazy facade's ``_EXPORTS`` table, is in
      ``__all__``;
    * every name resolves: ``getattr(module, name)`` works (a lazy facade
      imports it) and is not ``None``, and ``dir(module)`` lists it.

    Raises:
        AssertionError: naming what is wrong.
    """
    name = module.__name__
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    exported = list(exported)
    assert _sorted(exported), f"{name}.__all__ is not sorted: {exported}"
    duplicates = sorted({n for n in exported if exported.count(n) > 1})
    assert not duplicates, f"{name}.__all__ lists {duplicates} more than once"

    missing = []
    for symbol in exported:
        try:
            value = getattr(module, symbol)
        except AttributeError:
            missing.append(symbol)
            continue
        assert value is not None, f"{name}.{symbol} is None"
    assert not missing, f"{name}.__all__ names {missing}, which do not resolve"
    unlisted = sorted(set(exported) - set(dir(module)))
    assert not unlisted, f"dir({name}) leaves out {unlisted}"

    defined = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and _defined_in(getattr(v, "__module__", None), name)
    }
    lazy = set(getattr(module, "_EXPORTS", {}))
    left_out = sorted((defined | lazy) - set(exported))
    assert not left_out, f"{name} defines {left_out} but its __all__ leaves them out"


def _defined_in(owner: object, package: str) -> bool:
    return isinstance(owner, str) and (owner == package or owner.startswith(package + "."))
