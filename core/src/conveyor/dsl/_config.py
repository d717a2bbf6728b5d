"""The YAML run config: parameters, per-step parameters and settings, caching."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, ValidationInfo, field_validator

from conveyor.exceptions import ConfigError, DefinitionError, config_error
from conveyor.ir import ModelIR, ResourceSettings, Schedule, hook_source_problem, run_name_template_problem, shown

if TYPE_CHECKING:
    from conveyor.dsl._pipeline import Pipeline


def _hook_list(value: object) -> object:
    # One hook may be written alone; a list keeps its order.
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        for source in value:
            problem = hook_source_problem(source)
            if problem is not None:
                raise ValueError(f"hook {shown(source)} {problem}")
    return value


class StepRunConfig(BaseModel):
    """What a run config may set for one step call (keyed by its id)."""

    model_config = ConfigDict(extra="forbid")

    enable_cache: bool | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_delay: float | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    resources: ResourceSettings | None = None
    step_operator: str | None = None
    experiment_tracker: str | None = None
    data_validator: str | None = None
    secrets: list[str] | None = None
    environment: dict[str, str] | None = None
    model: ModelIR | None = None
    parameters: dict[str, JsonValue] = {}
    settings: dict[str, dict[str, JsonValue]] = {}
    on_success: list[str] | None = None
    on_failure: list[str] | None = None

    @field_validator("on_success", "on_failure", mode="before")
    @classmethod
    def _hooks(cls, value: object) -> object:
        return _hook_list(value)

    @field_validator("parameters", "settings", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value  # a key whose entries are all commented out


class RunConfig(BaseModel):
    """A whole run config file."""

    model_config = ConfigDict(extra="forbid")

    run_name: str | None = None
    enable_cache: bool | None = None
    model: ModelIR | None = None
    parameters: dict[str, JsonValue] = {}
    settings: dict[str, dict[str, JsonValue]] = {}
    schedule: Schedule | None = None
    tags: list[str] | None = None
    steps: dict[str, StepRunConfig] = {}
    on_success: list[str] | None = None
    """Sources (``module:function``) of the pipeline's success hooks; replaces the decorator's."""
    on_failure: list[str] | None = None
    """Sources of the pipeline's failure hooks; replaces the decorator's."""

    @field_validator("on_success", "on_failure", mode="before")
    @classmethod
    def _hooks(cls, value: object) -> object:
        return _hook_list(value)

    @field_validator("parameters", "settings", "steps", mode="before")
    @classmethod
    def _empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # a key whose entries are all commented out
            return {}
        if info.field_name == "steps" and isinstance(value, dict):
            return {k: {} if v is None else v for k, v in value.items()}
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        from conveyor.ir import name_problem

        for tag in value or ():
            problem = name_problem(tag)
            if problem is not None:
                raise ValueError(f"tag {shown(tag)} {problem}")
        return value

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        if value is not None:
            problem = run_name_template_problem(value)
            if problem is not None:
                raise ValueError(f"run_name {shown(value)} {problem}")
        return value


def load_run_config(path: str | Path, *, parameters: Sequence[str] = ()) -> RunConfig:
    """Read and validate a YAML run config.

    Args:
        parameters: the pipeline's parameter names: one of them at the top
            level says that it goes under ``parameters:``.

    Raises:
        ConfigError: the file is missing, is not YAML, or has an unknown or bad key.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read run config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"run config {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"run config {path} must be a mapping of keys, not {type(data).__name__}")
    misplaced = [k for k in data if k in parameters and k not in RunConfig.model_fields]
    if misplaced:
        key = misplaced[0]
        raise ConfigError(
            f"run config {path}: {key!r} is a pipeline parameter; pipeline parameters go under parameters:",
            f"write parameters: {{{key}: {json.dumps(data[key], default=str)}}}",
        )
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        known: type[BaseModel] = StepRunConfig if len(loc) > 2 and loc[0] == "steps" else RunConfig
        error = config_error(exc, f"run config {path}", kind="key", known=known)
        if known is RunConfig and len(loc) == 1 and error.hint and not error.hint.startswith("did you mean"):
            error = ConfigError(error.message, f"pipeline parameters go under parameters: ({error.hint})")
        raise error from None


def merge_run_configs(base: RunConfig | None, override: RunConfig) -> RunConfig:
    """Apply ``override`` over ``base`` (later with_options calls win)."""
    if base is None:
        return override
    data: dict[str, Any] = base.model_dump(exclude_unset=True)
    for key, value in override.model_dump(exclude_unset=True).items():
        if key == "steps":
            steps = data.setdefault("steps", {})
            for sid, cfg in value.items():
                steps[sid] = {**steps.get(sid, {}), **cfg}
        elif key in ("parameters", "settings"):
            data[key] = {**data.get(key, {}), **value}
        elif key == "tags":
            data[key] = [*(data.get(key) or []), *(value or [])]
        else:
            data[key] = value
    return RunConfig.model_validate(data)


# -- a commented template ------------------------------------------------------------------
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words YAML (as PyYAML reads it) takes for booleans or null when they stand unquoted.
_YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null"})
_STEP_KEYS = (
    ("enable_cache", "reuse an identical earlier result (default: the pipeline's)"),
    ("retries", "how many times to retry a failing step"),
    ("retry_delay", "seconds between attempts"),
    ("timeout", "seconds after which the step fails"),
    ("resources", "e.g. {cpu: 2, memory: 4Gi, gpu_count: 1}"),
    ("step_operator", "a step operator of the stack"),
    ("secrets", "names of secrets the step reads"),
    ("environment", "{VARIABLE: value} while the step runs"),
    ("settings", "e.g. {docker: {...}, airflow: {...}}"),
)


def _step_value(step: Any, key: str) -> Any:
    settings = step.settings
    if key == "resources":
        return settings.resources.model_dump(exclude_none=True)
    if key == "settings":
        return settings.extra
    value = getattr(settings, key)
    return list(value) if isinstance(value, tuple) else value


def _key(name: str) -> str:
    """A mapping key that YAML reads back as this exact string."""
    if _PLAIN_KEY.fullmatch(name) and name.lower() not in _YAML_WORDS:
        return name
    return json.dumps(name, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _short_type(annotation: Any) -> str:
    from conveyor.dsl._types import type_name

    return type_name(annotation).replace("builtins.", "").replace("typing.", "")


def write_run_configuration_template(pipeline: Pipeline, path: str | os.PathLike[str], **parameters: Any) -> Path:
    """Write a commented YAML run config for ``pipeline``: every key it accepts, with its current values.

    Loaded as it is written, the file changes nothing: pipeline parameters
    hold their defaults, everything else is commented out. Steps are listed by
    the ids a run config names them with.

    Args:
        pipeline: the pipeline (a ``@pipeline``).
        path: the YAML file to write (replaced if it exists).
        **parameters: values for the pipeline parameters without a default,
            which tracing the pipeline needs; they are written commented out.

    Returns:
        The path written.

    Raises:
        DefinitionError: a parameter without a default was not given, or the pipeline does not trace.
    """
    import inspect

    from conveyor.ir import ParameterInput

    required = [n for n, p in pipeline.signature.parameters.items() if p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in parameters]
    if missing:
        raise DefinitionError(
            f"pipeline {pipeline.name!r} parameter {missing[0]!r} has no default, which tracing it needs",
            f"give one: write_run_configuration_template(pipeline, path, {missing[0]}=...)",
        )
    ir = pipeline.trace(**parameters)
    annotations = pipeline._annotations()
    lines = [
        f"# Run config of pipeline {pipeline.name!r}.",
        f'# Use it: {pipeline.func.__name__}.with_options(config_path="{Path(path).name}")(), '
        f"or conveyor pipeline run FILE.py:{pipeline.func.__name__} -c {Path(path).name}",
        "# As written it changes nothing: uncomment and edit what you want to change.",
        "",
        f'# run_name: "{pipeline.name}-{{date}}-{{time}}"  # {{date}}, {{time}} and {{pipeline}} are filled in',
        f"# enable_cache: {_value(ir.settings.enable_cache)}  # for steps that do not say",
        "# tags: []  # more tags for the run",
        '# schedule: {cron: "0 6 * * *"}  # where the orchestrator runs schedules',
        "# settings: {}  # {docker: {...}, airflow: {...}} for the stack's components",
        "",
        "parameters:  # the pipeline's parameters",
    ]
    for name in pipeline.signature.parameters:
        kind = f"  # {_short_type(annotations[name])}" if name in annotations else ""
        if name in required:
            lines.append(f"  # {_key(name)}: {_value(ir.parameters[name])}{kind} (required: no default)")
        else:
            lines.append(f"  {_key(name)}: {_value(ir.parameters[name])}{kind}")
    lines += ["", "steps:  # by step id"]
    for step in ir.steps:
        lines.append(f"  {_key(step.id)}:  # {step.source}")
        for key, help_text in _STEP_KEYS:
            lines.append(f"    # {key}: {_value(_step_value(step, key))}  # {help_text}")
        own = {n: i for n, i in step.inputs.items() if isinstance(i, ParameterInput)}
        if own:
            lines.append("    # parameters:  # setting one here unlinks it from the pipeline parameter")
            for name, inp in own.items():
                linked = f"  # from pipeline parameter {inp.pipeline_parameter}" if inp.pipeline_parameter else ""
                lines.append(f"    #   {_key(name)}: {_value(inp.value)}{linked}")
    target = Path(path)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
