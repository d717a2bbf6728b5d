"""The ``@pipeline`` decorator and tracing a pipeline into IR."""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor._source import code_hash, source_of, source_root_of
from conveyor.constants import ENV_STEP_ENTRYPOINT
from conveyor.dsl._model import model_input, model_ir_of
from conveyor.dsl._step import Step, check_definition_name
from conveyor.dsl._tracing import (
    PipelineBuilder,
    check_parameter,
    current_builder,
    mark_pipeline_parameter,
    to_json_value,
)
from conveyor.dsl._types import parameter_problem, type_name
from conveyor.exceptions import ConfigError, DefinitionError, PipelineGraphError, config_error
from conveyor.ir import shown

if TYPE_CHECKING:
    from conveyor.dsl._config import RunConfig
    from conveyor.ir import ModelIR, PipelineIR, Schedule, StepIR

# A step process imports the user's module; a script that runs its pipeline
# at import time must not start the pipeline again from inside a step.
ENTRYPOINT_ENV = ENV_STEP_ENTRYPOINT


class Pipeline:
    """A function whose step calls form a pipeline. Calling it runs the pipeline."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool = True,
        settings: Mapping[str, Any] | None = None,
        model: Any = None,
        on_success: Any = None,
        on_failure: Any = None,
        tags: Sequence[str] = (),
    ) -> None:
        from conveyor.dsl._hooks import hook_sources

        self.func = func
        self.name = check_definition_name(name or func.__name__, "pipeline name")
        self.enable_cache = enable_cache
        self.settings: dict[str, Any] = dict(settings or {})
        self.model: ModelIR | None = model_ir_of(model, f"@pipeline(model=...) of {self.name!r}")
        self.on_success = hook_sources(on_success, f"pipeline {self.name!r} on_success")
        self.on_failure = hook_sources(on_failure, f"pipeline {self.name!r} on_failure")
        self.tags: tuple[str, ...] = _check_tags(tags)
        self.signature = inspect.signature(func)
        self.run_config: RunConfig | None = None
        # A run config file that could not be read: raised when the pipeline is traced, so that
        # a run whose config is wrong still fires the pipeline's failure hooks.
        self.config_error: ConfigError | None = None
        self.stack: str | None = None
        functools.update_wrapper(self, func)

    def hook_sources(self, event: str) -> tuple[str, ...]:
        """The sources of the pipeline's hooks for ``"success"`` or ``"failure"`` (the run config's, if it sets them)."""
        config_value = getattr(self.run_config, f"on_{event}", None) if self.run_config is not None else None
        if config_value is not None:
            return tuple(config_value)
        return tuple(getattr(self, f"on_{event}"))

    def with_options(
        self,
        *,
        config_path: str | os.PathLike[str] | None = None,
        enable_cache: bool | None = None,
        run_name: str | None = None,
        schedule: Schedule | None = None,
        settings: Mapping[str, Any] | None = None,
        steps: Mapping[str, Mapping[str, Any]] | None = None,
        stack: str | None = None,
        model: Any = None,
        on_success: Any = None,
        on_failure: Any = None,
        tags: Sequence[str] | None = None,
    ) -> Pipeline:
        """A copy of this pipeline with a run config applied.

        A config file that cannot be read or is not valid is reported when the
        pipeline is called (or traced), as a failed run.

        Args:
            config_path: a YAML run config (parameters, per-step params/settings, enable_cache, hooks).
            enable_cache: turn caching on or off for every step that does not say.
            run_name: name of the run (``{date}`` and ``{time}`` are filled in).
            schedule: run on a schedule where the orchestrator supports it.
            settings: namespaced pipeline settings (``{"docker": ...}``).
            steps: per-step config, as under ``steps:`` in the YAML file.
            stack: run on this stack instead of the active one.
            model: the :class:`conveyor.Model` each run creates a version of.
            on_success: hook(s) run once when a run completes (replace the pipeline's).
            on_failure: hook(s) run once when a run fails, also before any step
                started (a bad config, an image that does not build).
            tags: more tags for its runs (added to the pipeline's).
        """
        from conveyor.dsl._config import RunConfig, load_run_config, merge_run_configs
        from conveyor.dsl._hooks import hook_sources

        clone = copy.copy(self)
        config = self.run_config
        if config_path is not None:
            try:
                loaded = load_run_config(Path(config_path), parameters=tuple(self.signature.parameters))
                config = merge_run_configs(config, loaded)
            except ConfigError as exc:
                clone.config_error = clone.config_error or exc
        if tags is not None:
            clone.tags = _check_tags((*self.tags, *tags))
        direct: dict[str, Any] = {}
        for event, value in (("success", on_success), ("failure", on_failure)):
            if value is not None:
                direct[f"on_{event}"] = list(hook_sources(value, f"pipeline {self.name!r} on_{event}"))
        if enable_cache is not None:
            direct["enable_cache"] = enable_cache
        if run_name is not None:
            direct["run_name"] = run_name
        if schedule is not None:
            direct["schedule"] = schedule
        if settings is not None:
            direct["settings"] = {k: _settings_dict(v, k) for k, v in settings.items()}
        if steps is not None:
            direct["steps"] = dict(steps)
        if direct:
            try:
                config = merge_run_configs(config, RunConfig.model_validate(direct))
            except ValueError as exc:  # pydantic's ValidationError
                raise config_error(exc, f"pipeline {self.name!r} options", known=RunConfig) from None
        clone.run_config = config
        clone.stack = stack if stack is not None else self.stack
        if model is not None:
            clone.model = model_ir_of(model, f"pipeline {self.name!r} option model")
        return clone

    # -- tracing ---------------------------------------------------------------------
    def trace(self, *args: Any, **kwargs: Any) -> PipelineIR:
        """Run the pipeline function in tracing mode and return its IR.

        Raises:
            DefinitionError: an argument is unknown or not JSON, a step call is wrong.
            PipelineGraphError: the graph has a cycle or mismatched types.
            ConfigError: the run config names an unknown step or parameter.
        """
        from conveyor.dsl._hooks import check_hook_sources
        from conveyor.ir import PipelineIR, PipelineSettings

        if self.config_error is not None:
            raise self.config_error
        config = self.run_config
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineGraphError(f"pipeline {self.name!r}: {exc}") from None
        bound.apply_defaults()
        params = dict(bound.arguments)
        if config is not None and config.parameters:
            unknown = set(config.parameters) - set(self.signature.parameters)
            if unknown:
                raise ConfigError(
                    f"run config sets unknown parameter {sorted(unknown)[0]!r} of pipeline {self.name!r}",
                    f"its parameters are: {', '.join(self.signature.parameters) or '(none)'}",
                )
            params.update(config.parameters)
        missing = [p for p, v in params.items() if v is inspect.Parameter.empty]
        if missing:
            raise PipelineGraphError(f"pipeline {self.name!r} is missing parameter {missing[0]!r}")
        json_params = {}
        for k, v in params.items():
            where = f"parameter {k!r} of pipeline {self.name!r}"
            json_params[k] = check_parameter(to_json_value(v, where), where)
            annotation = self._annotations().get(k)
            problem = None if annotation is None else parameter_problem(annotation, json_params[k])
            if problem is not None:
                raise DefinitionError(
                    f"{where} is {shown(json_params[k])}, which is not a valid {type_name(annotation)}: {problem}",
                    "pass a value of the annotated type",
                )
        marked = {k: mark_pipeline_parameter(v) for k, v in params.items()}
        with PipelineBuilder(marked) as builder:
            self.func(**marked)
        if not builder.invocations:
            raise DefinitionError(f"pipeline {self.name!r} calls no step", "call at least one @step inside it")
        order = builder.ordered_ids()
        step_configs = dict(config.steps) if config is not None else {}
        unknown_steps = set(step_configs) - set(order)
        if unknown_steps:
            raise ConfigError(
                f"run config names unknown step {sorted(unknown_steps)[0]!r} of pipeline {self.name!r}",
                f"its steps are: {', '.join(order)}",
            )
        steps = tuple(_step_ir(builder.invocations[i], step_configs.get(i)) for i in order)
        enable_cache = self.enable_cache
        model = self.model
        extra = {k: _settings_dict(v, k) for k, v in self.settings.items()}
        if config is not None:
            if config.enable_cache is not None:
                enable_cache = config.enable_cache
            if config.model is not None:
                model = config.model
            extra.update(config.settings)
        tags = self.tags
        if config is not None and config.tags:
            tags = _check_tags((*tags, *config.tags))
        try:
            source = source_of(self.func)
        except DefinitionError:
            source = None
        on_success, on_failure = self.hook_sources("success"), self.hook_sources("failure")
        check_hook_sources((*on_success, *on_failure), f"pipeline {self.name!r}")
        for s in steps:
            check_hook_sources((*s.settings.on_success, *s.settings.on_failure), f"step {s.id!r}")
        try:
            return PipelineIR(
                name=self.name,
                source=source,
                parameters=json_params,
                steps=steps,
                settings=PipelineSettings(
                    enable_cache=enable_cache, extra=extra, on_success=on_success, on_failure=on_failure
                ),
                model=model,
                notebook=_notebook_text(steps),
                tags=tags,
            )
        except ValueError as exc:  # pydantic's ValidationError: a name the IR refuses
            raise config_error(exc, f"pipeline {self.name!r}", error=DefinitionError) from None

    def _annotations(self) -> dict[str, Any]:
        import typing

        try:
            return typing.get_type_hints(self.func, include_extras=True)
        except Exception:  # noqa: BLE001 - annotations that do not resolve are not checked
            return {}

    def source_root(self) -> Path | None:
        """The folder holding the pipeline's code, put on ``sys.path`` by step processes."""
        return source_root_of(self.func)

    def write_run_configuration_template(self, path: str | os.PathLike[str], **parameters: Any) -> Path:
        """Write a commented YAML run config for this pipeline (see :func:`write_run_configuration_template`)."""
        return write_run_configuration_template(self, path, **parameters)

    # -- running ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Trace the pipeline and run it on the active stack; returns the run.

        Called inside another pipeline, it runs nothing: its steps join the
        outer pipeline (see :meth:`compose`). Inside a step process this does
        nothing and returns None.
        """
        builder = current_builder()
        if builder is not None:
            return self.compose(*args, **kwargs)
        if os.environ.get(ENTRYPOINT_ENV):
            return None
        from conveyor._launch import launch

        return launch(self, args, kwargs)

    def compose(self, *args: Any, **kwargs: Any) -> Any:
        """Add this pipeline's steps to the pipeline being traced; returns what its function returns.

        Arguments may be the outer pipeline's parameters, literal values or
        step outputs. The steps get ids as if the outer pipeline called them
        itself (``train``, then ``train_2`` for a second call), so a run
        config names them the same way. The outer pipeline's options (caching,
        settings, tags) apply to them; this pipeline's own are not used.

        Raises:
            PipelineGraphError: not inside a pipeline being traced, or a bad argument.
        """
        if current_builder() is None:
            raise PipelineGraphError(f"pipeline {self.name!r} can only be composed inside another pipeline")
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineGraphError(f"pipeline {self.name!r} (called inside another pipeline): {exc}") from None
        bound.apply_defaults()
        missing = [p for p, v in bound.arguments.items() if v is inspect.Parameter.empty]
        if missing:
            raise PipelineGraphError(f"pipeline {self.name!r} is missing parameter {missing[0]!r}")
        return self.func(*bound.args, **bound.kwargs)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _settings_dict(value: Any, key: str) -> dict[str, Any]:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return to_json_value(dict(value), f"settings {key!r}")
    raise DefinitionError(f"settings {key!r} must be a mapping or a settings model, not {type(value).__name__}")


def _step_settings(step_id: str, options: dict[str, Any], extra: dict[str, Any]) -> Any:
    """A step's ``StepSettings`` from its merged options and its engines' settings."""
    from conveyor.ir import ResourceSettings, StepSettings

    resources = options.get("resources")
    if resources is not None and not isinstance(resources, ResourceSettings):
        resources = ResourceSettings.model_validate(_settings_dict(resources, "resources"))
    model = model_ir_of(options.get("model"), f"step {step_id!r} option model")
    try:
        return StepSettings(
            enable_cache=options.get("enable_cache"),
            retries=options.get("retries", 0),
            retry_delay=options.get("retry_delay", 0.0),
            timeout=options.get("timeout"),
            resources=resources or ResourceSettings(),
            step_operator=options.get("step_operator"),
            experiment_tracker=options.get("experiment_tracker"),
            data_validator=options.get("data_validator"),
            secrets=tuple(options.get("secrets", ())),
            environment=dict(options.get("environment") or {}),
            extra=extra,
            model=model,
            on_success=tuple(options.get("on_success", ())),
            on_failure=tuple(options.get("on_failure", ())),
        )
    except Exception as exc:  # pydantic ValidationError, kept to one line
        lines = str(exc).splitlines()
        raise ConfigError(f"step {step_id!r} settings: {' '.join(lines[1:3]).strip()}") from None


@functools.cache
def _empty_step_settings() -> Any:
    """The settings of a step that sets nothing: frozen, so every such step shares them."""
    return _step_settings("", {}, {})


@functools.lru_cache(maxsize=1024)
def _output_spec(type_: str, materializer: str | None, artifact_name: str | None) -> Any:
    """One frozen ``OutputSpec`` per distinct output description (a 1000-step trace has a handful)."""
    from conveyor.ir import OutputSpec

    return OutputSpec(type=type_, materializer=materializer, artifact_name=artifact_name)


def _step_ir(inv: Any, config: Any) -> Any:
    from conveyor.ir import ParameterInput, StepIR

    step: Step = inv.step
    options = dict(step.options)
    extra = {k: _settings_dict(v, k) for k, v in step.settings.items() if k != "resources"}
    if "resources" in step.settings and "resources" not in options:
        options["resources"] = step.settings["resources"]
    inputs = dict(inv.inputs)
    if config is not None:
        for key in (
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
        ):
            value = getattr(config, key)
            if value is not None:
                options[key] = value
        for pname, value in config.parameters.items():
            if pname not in step.input_types:
                raise ConfigError(
                    f"run config sets unknown parameter {pname!r} of step {inv.id!r}",
                    f"its inputs are: {', '.join(step.input_types) or '(none)'}",
                )
            if getattr(inputs.get(pname), "kind", None) == "artifact":
                raise ConfigError(f"run config sets {inv.id}.{pname}, which is fed by another step's output")
            where = f"run config parameter {pname!r} of step {inv.id!r}"
            try:
                reference = model_input(value, step.input_types[pname], where, None)
                if reference is not None:
                    inputs[pname] = reference
                    continue
                value = check_parameter(to_json_value(value, where), where)
            except DefinitionError as exc:
                raise ConfigError(exc.message, exc.hint) from None
            problem = parameter_problem(step.input_types[pname], value)
            if problem is not None:
                raise ConfigError(
                    f"{where} is {shown(value)}, which is not a valid {type_name(step.input_types[pname])}: {problem}"
                )
            inputs[pname] = ParameterInput(value=value)
        for key, value in config.settings.items():
            extra[key] = {**extra.get(key, {}), **value}
    settings = _empty_step_settings() if not options and not extra else _step_settings(inv.id, options, extra)
    outputs = {
        name: _output_spec(
            type_name(tp),
            source_of(step.output_materializers[name]) if name in step.output_materializers else None,
            step.output_artifact_names.get(name),
        )
        for name, tp in step.output_types.items()
    }
    return StepIR(
        id=inv.id,
        name=step.name,
        source=source_of(step.func),
        code_hash=code_hash(step.func),
        inputs=inputs,
        outputs=outputs,
        after=tuple(sorted(inv.after)),
        settings=settings,
    )


def write_run_configuration_template(pipeline: Pipeline, path: str | os.PathLike[str], **parameters: Any) -> Path:
    """Write a commented YAML run config for ``pipeline``: every key it accepts, with its current values.

    As written it changes nothing: pipeline parameters hold their defaults,
    everything else is commented out, and steps are listed by the ids a run
    config names them with.

    Args:
        pipeline: the ``@pipeline``.
        path: the YAML file to write (replaced if it exists).
        **parameters: values for pipeline parameters without a default (tracing needs them).

    Returns:
        The path written.

    Raises:
        DefinitionError: a parameter without a default was not given, or the pipeline does not trace.
    """
    from conveyor.dsl import _config

    return _config.write_run_configuration_template(pipeline, path, **parameters)


def _check_tags(tags: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise DefinitionError(f"tags must be a list of tags, not the string {shown(tags)}", "tags=['a', 'b']")
    for tag in tags:
        check_definition_name(tag, "tag")
    return tuple(sorted(set(tags)))


def pipeline(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool = True,
    settings: Mapping[str, Any] | None = None,
    model: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
    tags: Sequence[str] = (),
) -> Any:
    """Turn a function that calls steps into a pipeline.

    Args:
        name: the pipeline's name (default: the function name).
        enable_cache: default caching for its steps.
        settings: namespaced settings for stack components (``{"docker": ...}``).
        model: a :class:`conveyor.Model`: each run creates a new version of it (or
            attaches to the version it names) and links its steps and artifacts to it.
        tags: tags every run of it starts with (``conveyor pipeline runs --tag T`` finds them).
        on_success: hook(s) run once when a run completes: functions taking a
            :class:`~conveyor.runtime.HookContext`, or ``"module:function"``.
        on_failure: hook(s) run once when a run fails, also when it fails
            before any step started (a bad config, an image that does not build).

    Raises:
        DefinitionError: a hook is not a module-level function.
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(
            f,
            name=name,
            enable_cache=enable_cache,
            settings=settings,
            model=model,
            on_success=on_success,
            on_failure=on_failure,
            tags=tags,
        )

    return wrap(func) if func is not None else wrap


def _notebook_text(steps: tuple[StepIR, ...]) -> str | None:
    """The notebook's definitions when a step or its materializers come from notebook cells."""
    from conveyor._notebook import NOTEBOOK_MODULE, notebook_code

    prefix = f"{NOTEBOOK_MODULE}:"
    sources = [s.source for s in steps] + [o.materializer or "" for s in steps for o in s.outputs.values()]
    if not any(source.startswith(prefix) for source in sources):
        return None
    return notebook_code()
