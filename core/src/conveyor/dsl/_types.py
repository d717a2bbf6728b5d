"""Reading step annotations: output names, stable type names, compatibility."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from conveyor.exceptions import DefinitionError

SINGLE_OUTPUT = "output"


@dataclass(frozen=True)
class ArtifactConfig:
    """How a step output is saved, given inside ``Annotated`` instead of (or beside) a plain name.

    ``Annotated[Model, ArtifactConfig(name="model")]`` names the output
    ``model`` and its artifact exactly ``model``: one version sequence that
    every output and :func:`conveyor.save_artifact` call using that name
    shares, in any pipeline. An output named only by a string
    (``Annotated[Model, "model"]``) or not named at all is versioned as
    ``<pipeline>::<step id>::<output>``, so two pipelines' ``model`` outputs
    never share a sequence unless they are named the same on purpose.

    Args:
        name: the artifact's name (the naming rule of pipelines and steps).

    Raises:
        DefinitionError: a name the naming rule refuses.
    """

    name: str

    def __post_init__(self) -> None:
        from conveyor.ir import NAME_RULE, name_problem, shown

        problem = name_problem(self.name)
        if problem is not None:
            subject = shown(self.name) if isinstance(self.name, str) else repr(self.name)
            raise DefinitionError(f"artifact name {subject} {problem}", NAME_RULE)


def _strip_annotated(tp: Any) -> tuple[Any, str | None]:
    base, name, _ = _annotated_parts(tp)
    return base, name


def _annotated_parts(tp: Any) -> tuple[Any, str | None, ArtifactConfig | None]:
    """``(type, output name, artifact config)`` of an annotation; a string names the output, else the config does."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        names = [m for m in meta if isinstance(m, str)]
        configs = [m for m in meta if isinstance(m, ArtifactConfig)]
        config = configs[0] if configs else None
        name = names[0] if names else config.name if config is not None else None
        return base, name, config
    return tp, None, None


def _parse(step_name: str, annotation: Any) -> dict[str, tuple[Any, ArtifactConfig | None]]:
    if annotation is None or annotation is type(None):
        return {}
    base, name, config = _annotated_parts(annotation)
    if get_origin(base) is tuple and name is None:
        items = get_args(base)
        parsed = [_annotated_parts(i) for i in items]
        if items and Ellipsis not in items and all(n is not None for _, n, _ in parsed):
            names = [n for _, n, _ in parsed]
            dupes = {str(n) for n in names if names.count(n) > 1}
            if dupes:
                raise DefinitionError(
                    f"step {step_name!r} names two outputs {sorted(dupes)[0]!r}",
                    "give each output of the tuple its own name",
                )
            return {n: (t, c) for t, n, c in parsed}  # type: ignore[misc]
    return {name or SINGLE_OUTPUT: (base, config)}


def parse_outputs(step_name: str, annotation: Any) -> dict[str, Any]:
    """Turn a step's return annotation into ``{output name: type}``.

    ``None`` means no output; ``tuple[Annotated[A, "a"], Annotated[B, "b"]]``
    means two outputs; anything else is one output named ``output`` (or the
    name given by ``Annotated[T, "name"]`` or ``Annotated[T, ArtifactConfig(name=...)]``).
    """
    return {name: tp for name, (tp, _) in _parse(step_name, annotation).items()}


def output_artifact_names(step_name: str, annotation: Any) -> dict[str, str]:
    """``{output name: artifact name}`` of the outputs named with :class:`ArtifactConfig`."""
    return {name: config.name for name, (_, config) in _parse(step_name, annotation).items() if config is not None}


def type_name(tp: Any) -> str:
    """A stable, readable spelling of a type annotation (``builtins.list[builtins.int]``)."""
    if tp is Any:
        return "typing.Any"
    if tp is None or tp is type(None):
        return "builtins.NoneType"
    base, name = _strip_annotated(tp)
    if name is not None or base is not tp:
        return type_name(base)
    origin = get_origin(tp)
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in get_args(tp))
        if origin is Union or origin is types.UnionType:
            return f"typing.Union[{args}]"
        return f"{type_name(origin)}[{args}]"
    if isinstance(tp, type):
        return f"{tp.__module__}.{tp.__qualname__}"
    if isinstance(tp, typing.TypeVar):
        return "typing.Any"
    return repr(tp)


def runtime_type(tp: Any) -> Any:
    """The class to check values against and pick a materializer for (``list[int]`` → ``list``)."""
    base, _ = _strip_annotated(tp)
    origin = get_origin(base)
    if origin is Union or origin is types.UnionType:
        return Any
    if origin is not None:
        return origin
    if isinstance(base, typing.TypeVar):
        return Any
    return base


def is_compatible(produced: Any, expected: Any) -> bool:
    """Whether an output annotated ``produced`` may feed an input annotated ``expected``."""
    produced, _ = _strip_annotated(produced)
    expected, _ = _strip_annotated(expected)
    if produced is Any or expected is Any or produced == expected:
        return True
    if isinstance(expected, typing.TypeVar) or isinstance(produced, typing.TypeVar):
        return True
    e_origin, p_origin = get_origin(expected), get_origin(produced)
    if e_origin is Union or e_origin is types.UnionType:
        return any(is_compatible(produced, member) for member in get_args(expected))
    if p_origin is Union or p_origin is types.UnionType:
        return all(is_compatible(member, expected) for member in get_args(produced))
    p_cls = p_origin or produced
    e_cls = e_origin or expected
    if not (isinstance(p_cls, type) and isinstance(e_cls, type)):
        return False
    if e_cls is float and p_cls is int:
        return True
    try:
        if not issubclass(p_cls, e_cls):
            return False
    except TypeError:
        return False
    p_args, e_args = get_args(produced), get_args(expected)
    if not p_args or not e_args:
        return True
    if len(p_args) != len(e_args):
        return Ellipsis in p_args or Ellipsis in e_args
    return all(a is Ellipsis or b is Ellipsis or is_compatible(a, b) for a, b in zip(p_args, e_args, strict=True))


_ELEMENTS_CHECKED = 10_000
"""How many elements of a returned container are checked against its element type."""


def value_matches(tp: Any, value: Any) -> bool:
    """Whether a returned value fits its annotation (containers: their first 10,000 elements)."""
    base, _ = _strip_annotated(tp)
    if base is Any or isinstance(base, typing.TypeVar):
        return True
    if base is None or base is type(None):
        return value is None
    origin = get_origin(base)
    args = get_args(base)
    if origin is Union or origin is types.UnionType:
        return any(value_matches(member, value) for member in args)
    if origin is typing.Literal:
        return value in args
    if origin is not None:
        if not _isinstance(value, origin):
            return False
        return _elements_match(origin, args, value)
    if base is float or base is complex:
        # The numeric tower: an int is a fine float, a float a fine complex.
        allowed = (int, float) if base is float else (int, float, complex)
        return isinstance(value, allowed) and not isinstance(value, bool)
    return _isinstance(value, base)


def _isinstance(value: Any, cls: Any) -> bool:
    try:
        return isinstance(value, cls)
    except TypeError:
        return True  # a protocol or special form that cannot be checked at run time


def _elements_match(origin: Any, args: tuple[Any, ...], value: Any) -> bool:
    import itertools

    if not args:
        return True
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(value_matches(args[0], v) for v in itertools.islice(value, _ELEMENTS_CHECKED))
        return len(value) == len(args) and all(value_matches(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(value, dict) and len(args) == 2:
        pairs = itertools.islice(value.items(), _ELEMENTS_CHECKED)
        return all(value_matches(args[0], k) and value_matches(args[1], v) for k, v in pairs)
    if isinstance(value, (list, set, frozenset)) and len(args) == 1:
        return all(value_matches(args[0], v) for v in itertools.islice(value, _ELEMENTS_CHECKED))
    return True


_adapters: dict[Any, Any] = {}


def parameter_adapter(annotation: Any) -> Any:
    """A cached pydantic ``TypeAdapter`` that validates parameter values for an annotation."""
    try:
        adapter = _adapters.get(annotation)
    except TypeError:  # unhashable annotation
        adapter = None
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = TypeAdapter(annotation)
        try:
            _adapters[annotation] = adapter
        except TypeError:
            pass
    return adapter


def parameter_problem(annotation: Any, value: Any) -> str | None:
    """Why a JSON parameter value does not fit an annotation, or None when it does."""
    if annotation is Any:
        return None
    from pydantic import ValidationError

    try:
        parameter_adapter(annotation).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot build a validator for
        return None
    return None
