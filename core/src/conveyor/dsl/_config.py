"""The YAML run config: parameters, per-step parameters and settings, caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from conveyor.exceptions import ConfigError, config_error
from conveyor.ir import ModelIR, ResourceSettings, Schedule, hook_source_problem, run_name_template_problem, shown


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


class RunConfig(BaseModel):
    """A whole run config file."""

    model_config = ConfigDict(extra="forbid")

    run_name: str | None = None
    enable_cache: bool | None = None
    model: ModelIR | None = None
    parameters: dict[str, JsonValue] = {}
    settings: dict[str, dict[str, JsonValue]] = {}
    schedule: Schedule | None = None
    steps: dict[str, StepRunConfig] = {}
    on_success: list[str] | None = None
    """Sources (``module:function``) of the pipeline's success hooks; replaces the decorator's."""
    on_failure: list[str] | None = None
    """Sources of the pipeline's failure hooks; replaces the decorator's."""

    @field_validator("on_success", "on_failure", mode="before")
    @classmethod
    def _hooks(cls, value: object) -> object:
        return _hook_list(value)

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        if value is not None:
            problem = run_name_template_problem(value)
            if problem is not None:
                raise ValueError(f"run_name {shown(value)} {problem}")
        return value


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config.

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
        else:
            data[key] = value
    return RunConfig.model_validate(data)
