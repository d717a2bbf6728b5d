"""The ``@step`` decorator."""

from __future__ import annotations

import copy
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, overload

from conveyor.dsl._model import model_input, model_ir_of
from conveyor.dsl._tracing import (
    Invocation,
    InvocationHandle,
    StepOutput,
    StepOutputs,
    check_parameter,
    current_builder,
    to_json_value,
)
from conveyor.dsl._types import is_compatible, output_artifact_names, parameter_problem, parse_outputs, type_name
from conveyor.exceptions import DefinitionError, PipelineGraphError
from conveyor.ir import NAME_RULE, output_name_problem, shown

# Options a user may give to @step and step.with_options, with their defaults.
_SETTING_KEYS = (
    "enable_cache",
    "retries",
    "retry_delay",
    "timeout",
    "resources",
    "step_operator",
    "experiment_tracker",
    "data_validator",
    "secrets",
    "environment",
    "model",
    "on_success",
    "on_failure",
)
_HOOK_KEYS = ("on_success", "on_failure")


def _with_hook_sources(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with its hooks turned into their sources (functions are checked now)."""
    from conveyor.dsl._hooks import hook_sources

    for key in _HOOK_KEYS:
        if key in options:
            options[key] = hook_sources(options[key], f"step {name!r} {key}")
    return options


class Step:
    """A typed Python function that a pipeline runs as one unit.

    Called inside a ``@pipeline`` function it records a step call and returns
    references to its outputs; called anywhere else it is the plain function.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
        output_materializers: Mapping[str, Any] | type | None = None,
        options: Mapping[str, Any] | None = None,
        invocation_id: str | None = None,
    ) -> None:
        self.func = func
        self.name = check_definition_name(name or func.__name__, "step name")
        self.options: dict[str, Any] = dict(options or {})
        self.settings: dict[str, Any] = dict(settings or {})
        self.invocation_id = invocation_id
        functools.update_wrapper(self, func)
        self.signature = inspect.signature(func)
        hints = _type_hints(func, self.name)
        for pname, param in self.signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise DefinitionError(
                    f"step {self.name!r} takes *{pname}; steps need named, annotated inputs",
                    "list each input as its own annotated parameter",
                )
            if pname not in hints:
                raise DefinitionError(
                    f"step {self.name!r} input {pname!r} has no type annotation",
                    "annotate every input (use typing.Any to accept anything)",
                )
        if "return" not in hints:
            raise DefinitionError(
                f"step {self.name!r} has no return annotation",
                "annotate the return (-> None for no output, typing.Any to return anything)",
            )
        self.input_types: dict[str, Any] = {p: hints[p] for p in self.signature.parameters}
        self.output_types: dict[str, Any] = parse_outputs(self.name, hints["return"])
        self.output_artifact_names: dict[str, str] = output_artifact_names(self.name, hints["return"])
        for output in self.output_types:
            problem = output_name_problem(output)
            if problem is not None:
                raise DefinitionError(f"step {self.name!r}: output name {shown(output)} {problem}", NAME_RULE)
        self.output_materializers = _normalize_materializers(self.name, self.output_types, output_materializers)

    # -- options ---------------------------------------------------------------------
    def with_options(
        self,
        *,
        id: str | None = None,
        settings: Mapping[str, Any] | None = None,
        output_materializers: Mapping[str, Any] | type | None = None,
        **options: Any,
    ) -> Step:
        """A copy of this step with other options for the calls made with it.

        Args:
            id: the invocation id to use for the next call (default: step name).
            settings: namespaced settings merged over the step's (``{"docker": ...}``).
            output_materializers: materializer class, or ``{output: class}``.
            **options: ``enable_cache``, ``retries``, ``retry_delay``, ``timeout``,
                ``resources``, ``step_operator``, ``experiment_tracker``, ``data_validator``,
                ``secrets``, ``environment``, ``model``, ``on_success``, ``on_failure``.
        """
        unknown = set(options) - set(_SETTING_KEYS)
        if unknown:
            raise DefinitionError(
                f"step {self.name!r} has no option {sorted(unknown)[0]!r}",
                f"options are: {', '.join(_SETTING_KEYS)}",
            )
        if options.get("model") is not None:
            model_ir_of(options["model"], f"step {self.name!r} option model")
        clone = copy.copy(self)
        clone.options = {**self.options, **_with_hook_sources(self.name, dict(options))}
        clone.settings = {**self.settings, **dict(settings or {})}
        if output_materializers is not None:
            clone.output_materializers = _normalize_materializers(self.name, self.output_types, output_materializers)
        clone.invocation_id = check_definition_name(id, "step id") if id is not None else self.invocation_id
        return clone

    # -- calling ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is None:
            return self.func(*args, **kwargs)
        return self._record(builder, args, kwargs)

    def entrypoint(self, **kwargs: Any) -> Any:
        """Run the wrapped function with resolved inputs (used by the runtime)."""
        return self.func(**kwargs)

    def _record(self, builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from conveyor.ir import ArtifactInput, ParameterInput

        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineGraphError(f"step {self.name!r}: {_bind_message(exc)}") from None
        bound.apply_defaults()
        inv_id = builder.new_id(self, self.invocation_id)
        inputs: dict[str, Any] = {}
        for pname, value in bound.arguments.items():
            expected = self.input_types[pname]
            if isinstance(value, StepOutputs):
                raise PipelineGraphError(
                    f"step {inv_id!r} input {pname!r} got all outputs of step {value[0].invocation_id!r}",
                    "unpack them and pass one: a, b = step(...)",
                )
            if isinstance(value, StepOutput):
                if not is_compatible(value.annotation, expected):
                    raise PipelineGraphError(
                        f"step {inv_id!r} input {pname!r} expects {type_name(expected)} but "
                        f"{value.invocation_id}.{value.name} is {type_name(value.annotation)}",
                        "change one of the two annotations so that they match",
                    )
                inputs[pname] = ArtifactInput(step=value.invocation_id, output=value.name)
            elif isinstance(value, InvocationHandle):
                raise PipelineGraphError(
                    f"step {inv_id!r} input {pname!r} got step {value.invocation_id!r}, which has no output",
                    "use .after() to order steps without passing data",
                )
            else:
                where = f"parameter {pname!r} of step {inv_id!r}"
                source = builder.pipeline_parameter_of(value)
                reference = model_input(value, expected, where, source)
                if reference is not None:
                    inputs[pname] = reference  # an artifact of a model version, found when the step runs
                    continue
                json_value = check_parameter(to_json_value(value, where), where)
                problem = parameter_problem(expected, json_value)
                if problem is not None:
                    subject = f"pipeline parameter {source!r}" if source else f"parameter {pname!r}"
                    raise DefinitionError(
                        f"{subject} is {shown(json_value)}, but step {inv_id!r} needs a "
                        f"{type_name(expected)} for {pname!r}: {problem}",
                        "pass a value of the annotated type",
                    )
                inputs[pname] = ParameterInput(value=json_value, pipeline_parameter=source)
        builder.add(Invocation(id=inv_id, step=self, inputs=inputs))
        if not self.output_types:
            return InvocationHandle(inv_id)
        handles = [StepOutput(inv_id, name, tp) for name, tp in self.output_types.items()]
        if len(handles) == 1 and next(iter(self.output_types)) == "output":
            return handles[0]
        if len(handles) == 1:
            return handles[0]
        return StepOutputs(handles)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def check_definition_name(name: str, what: str) -> str:
    """Return ``name`` if it follows the naming rule, else raise a one-line DefinitionError."""
    from conveyor.ir import name_problem

    problem = name_problem(name)
    if problem is not None:
        raise DefinitionError(f"{what} {shown(name) if isinstance(name, str) else repr(name)} {problem}", NAME_RULE)
    return name


def _bind_message(exc: TypeError) -> str:
    text = str(exc)
    if "unexpected keyword argument" in text:
        arg = text.split("'")[1] if "'" in text else text
        return f"got an unknown argument {arg!r}"
    return text


def _type_hints(func: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except NameError as exc:
        raise DefinitionError(f"step {name!r} has an annotation that does not resolve: {exc}") from None


def _normalize_materializers(
    name: str, outputs: Mapping[str, Any], given: Mapping[str, Any] | type | None
) -> dict[str, Any]:
    if given is None:
        return {}
    if isinstance(given, type):
        return {out: given for out in outputs}
    unknown = set(given) - set(outputs)
    if unknown:
        raise DefinitionError(
            f"step {name!r} has no output {sorted(unknown)[0]!r} for output_materializers",
            f"its outputs are: {', '.join(outputs) or '(none)'}",
        )
    return dict(given)


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    timeout: float | None = None,
    resources: Any = None,
    step_operator: str | None = None,
    experiment_tracker: str | None = None,
    data_validator: str | None = None,
    secrets: list[str] | tuple[str, ...] = (),
    environment: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    output_materializers: Mapping[str, Any] | type | None = None,
    model: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    output_materializers: Mapping[str, Any] | type | None = None,
    **options: Any,
) -> Any:
    """Turn a typed function into a pipeline step.

    Every input and the return must be annotated. A single output is named
    ``output``; several outputs are ``tuple[Annotated[T, "name"], ...]``.

    Args:
        name: the step's name (default: the function name).
        enable_cache: reuse outputs of an identical earlier run (default: the pipeline's).
        retries: how many times to retry a failing step.
        retry_delay: seconds to wait between attempts.
        timeout: seconds after which the step fails.
        resources: ``ResourceSettings`` or a dict (cpu, memory, gpu_count, gpu_type).
        step_operator: name of the step operator to run this step with.
        experiment_tracker: the experiment tracker (name or flavor) active while the step runs.
        data_validator: the data validator (name or flavor) the step uses.
        secrets: names of secrets the step reads from its context.
        environment: environment variables set while the step runs.
        settings: namespaced settings for stack components (``{"docker": ...}``).
        output_materializers: materializer class, or ``{output name: class}``.
        model: a :class:`conveyor.Model`: each run of the step creates a version of it
            (default: the pipeline's model, whose version the whole run shares).
        on_success: hook(s) run after the step completed: functions taking a
            :class:`~conveyor.runtime.HookContext`, or ``"module:function"``.
        on_failure: hook(s) run once when the step failed for good (after its
            last retry), also when its process was killed or timed out.

    Raises:
        DefinitionError: an annotation is missing, an option is unknown, or a hook is not a function.
    """
    unknown = set(options) - set(_SETTING_KEYS)
    if unknown:
        raise DefinitionError(
            f"@step got an unknown option {sorted(unknown)[0]!r}", f"options are: {', '.join(_SETTING_KEYS)}"
        )
    clean = {k: v for k, v in options.items() if v is not None}
    if "model" in clean:
        model_ir_of(clean["model"], f"@step(model=...) of {name or getattr(func, '__name__', 'a step')!r}")

    def wrap(f: Callable[..., Any]) -> Step:
        step_name = str(name or getattr(f, "__name__", "step"))
        hooked = _with_hook_sources(step_name, dict(clean))
        return Step(f, name=name, settings=settings, output_materializers=output_materializers, options=hooked)

    return wrap(func) if func is not None else wrap
