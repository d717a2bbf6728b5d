"""The pipeline IR: frozen, plain-data pydantic models.

This module imports nothing else from conveyor and no engine: adapters and
the step entrypoint agree on these models alone. Its JSON form is canonical
(sorted keys, no timestamps, no host names) so that compiled output is a
pure function of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_serializer,
    model_validator,
)

from conveyor.ir._names import (
    LATEST,
    artifact_name_ok,
    check_name,
    hook_source_problem,
    normalize_version,
    output_name_problem,
    run_name_template_problem,
    shown,
    version_reference_problem,
)
from conveyor.ir._resources import cpu_quantity, memory_quantity, parse_memory

IR_VERSION = 1
"""Bumped whenever a change to these models is not backwards compatible."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical_json(self) -> str:
        """Return the canonical JSON text: sorted keys, no whitespace."""
        return canonical_json(self.model_dump(mode="json"))


def canonical_json(data: Any) -> str:
    """Serialize plain data as canonical JSON (sorted keys, compact, UTF-8 kept)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ArtifactInput(_Model):
    """A step input fed by an output of an upstream step."""

    kind: Literal["artifact"] = "artifact"
    step: str
    output: str

    @field_validator("step", "output")
    @classmethod
    def _names(cls, value: str, info: Any) -> str:
        return check_name(value, "step id" if info.field_name == "step" else "output name")


class ParameterInput(_Model):
    """A step input given as a JSON value.

    ``pipeline_parameter`` names the pipeline parameter the value came from,
    so engines that expose run-time inputs (KFP, Prefect) can override it.
    """

    kind: Literal["parameter"] = "parameter"
    value: JsonValue
    pipeline_parameter: str | None = None


def _check_version_reference(value: str) -> str:
    problem = version_reference_problem(value)
    if problem is not None:
        raise ValueError(f"model version {shown(value)} {problem}")
    return normalize_version(value)


class ModelInput(_Model):
    """A step input loaded from an artifact of a model version, resolved when the step runs.

    ``version`` is a number, ``latest``, an alias or a version name; an
    alias is read when the step runs, so a moved alias is followed.
    ``artifact`` names the artifact of the version; when it is None the
    artifact named like the input is taken, else the only one of the input's
    type. ``pipeline_parameter`` names the pipeline parameter the reference
    came from (``"churn@production"``), so a run can override it.
    """

    kind: Literal["model"] = "model"
    model: str
    version: str = LATEST
    artifact: str | None = None
    pipeline_parameter: str | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return check_name(value, "model name")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _check_version_reference(value)

    @field_validator("artifact")
    @classmethod
    def _artifact(cls, value: str | None) -> str | None:
        if value is not None and not artifact_name_ok(value):
            raise ValueError(f"artifact name {shown(value)} is empty, too long or holds a control character")
        return value

    @property
    def reference(self) -> str:
        """The reference as text: ``MODEL@VERSION`` or ``MODEL@VERSION/ARTIFACT``."""
        return f"{self.model}@{self.version}" + (f"/{self.artifact}" if self.artifact else "")


StepInput = Annotated[ArtifactInput | ParameterInput | ModelInput, Field(discriminator="kind")]


_MAX_TAG = 255
_MAX_TAGS = 64


class ModelIR(_Model):
    """A model that a pipeline run (or one step) works on.

    A run creates a new numbered version of it when ``version`` is None;
    otherwise it attaches to the version the reference names (a number,
    ``latest``, an alias or a version name), creating a version of that name
    when none exists. ``description``, ``tags`` and ``license`` describe the
    model; they are recorded when a run creates a version.
    """

    name: str
    version: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "model name")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return None if value is None else _check_version_reference(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > _MAX_TAGS:
            raise ValueError(f"a model has at most {_MAX_TAGS} tags, not {len(value)}")
        for tag in value:
            if not tag or len(tag) > _MAX_TAG or not tag.isprintable():
                raise ValueError(f"tag {shown(tag)} is empty, longer than {_MAX_TAG} characters or not printable")
        return value

    @field_validator("license")
    @classmethod
    def _license(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > _MAX_TAG or not value.isprintable()):
            raise ValueError(f"license {shown(value)} is longer than {_MAX_TAG} characters or not printable")
        return value

    def fields(self) -> dict[str, Any]:
        """``description``, ``tags`` and ``license`` as plain data (what a new version records on its model)."""
        return {"description": self.description, "tags": list(self.tags), "license": self.license}


class OutputSpec(_Model):
    """One declared output of a step.

    ``type`` is a readable, stable spelling of the annotation
    (``builtins.list[builtins.int]``); ``materializer`` is set only when the
    user chose one explicitly (``module:Class``), otherwise it is picked by
    type when the step runs.
    """

    type: str
    materializer: str | None = None
    artifact_name: str | None = None
    """The artifact name the user gave (``ArtifactConfig(name=...)``): shared by every output and saved
    value of that name. None: the artifact is named ``<pipeline>::<step id>::<output>``."""

    @field_validator("artifact_name")
    @classmethod
    def _artifact_name(cls, value: str | None) -> str | None:
        return value if value is None else check_name(value, "artifact name")


class ResourceSettings(_Model):
    """Compute resources a step asks for; ``None`` means no request.

    ``memory`` is given as a size (``"1.5Gi"``, ``"512M"``, a number of bytes)
    and kept as a whole number of bytes (see :mod:`conveyor.ir._resources`);
    ``cpu`` must be more than 0; ``gpu_count`` at least 0.
    """

    cpu: float | None = Field(default=None, gt=0)
    memory: Annotated[int, BeforeValidator(parse_memory)] | None = None
    gpu_count: int | None = Field(default=None, ge=0)
    gpu_type: str | None = None

    def memory_quantity(self) -> str | None:
        """The memory as an exact Kubernetes quantity (``1536Mi``), or None."""
        return None if self.memory is None else memory_quantity(self.memory)

    def cpu_quantity(self) -> str | None:
        """The CPUs as a Kubernetes quantity (``500m``, ``2``), or None."""
        return None if self.cpu is None else cpu_quantity(self.cpu)

    def is_empty(self) -> bool:
        """True when nothing is requested."""
        return all(v is None for v in (self.cpu, self.memory, self.gpu_count, self.gpu_type))


def _check_hooks(value: tuple[str, ...]) -> tuple[str, ...]:
    for source in value:
        problem = hook_source_problem(source)
        if problem is not None:
            raise ValueError(f"hook {shown(source)} {problem}")
    return value


class StepSettings(_Model):
    """Per-invocation settings of a step.

    ``extra`` holds namespaced settings that only some components read
    (``{"docker": {...}, "airflow": {...}}``); the flavor that owns a
    namespace validates it at compile time. ``on_success`` and
    ``on_failure`` are the sources (``module:function``) of the step's hooks,
    run in that order.
    """

    enable_cache: bool | None = None
    retries: int = Field(default=0, ge=0)
    retry_delay: float = Field(default=0.0, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    resources: ResourceSettings = ResourceSettings()
    step_operator: str | None = None
    experiment_tracker: str | None = None
    """The experiment tracker (name or flavor) that is active while the step runs."""
    data_validator: str | None = None
    """The data validator (name or flavor) the step uses."""
    secrets: tuple[str, ...] = ()
    environment: dict[str, str] = {}
    extra: dict[str, dict[str, JsonValue]] = {}
    model: ModelIR | None = None
    """The step's own model (its runs create a version of it per step run); None: the pipeline's."""
    on_success: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()

    @field_validator("on_success", "on_failure")
    @classmethod
    def _hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_hooks(value)


class StepIR(_Model):
    """One invocation of a step inside a pipeline."""

    id: str
    name: str
    source: str
    code_hash: str
    inputs: dict[str, StepInput] = {}
    outputs: dict[str, OutputSpec] = {}
    after: tuple[str, ...] = ()
    settings: StepSettings = StepSettings()

    @field_validator("id", "name")
    @classmethod
    def _names(cls, value: str, info: Any) -> str:
        return check_name(value, f"step {info.field_name}")

    @field_validator("after")
    @classmethod
    def _after(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for step_id in value:
            check_name(step_id, "step id")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            check_name(name, "input name")
        return value

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: dict[str, OutputSpec]) -> dict[str, OutputSpec]:
        for name in value:
            problem = output_name_problem(name)
            if problem is not None:
                raise ValueError(f"output name {shown(name)} {problem}")
        return value

    def upstream(self) -> tuple[str, ...]:
        """Ids of every step this one waits for (data and ordering edges), sorted."""
        ids = {i.step for i in self.inputs.values() if isinstance(i, ArtifactInput)}
        return tuple(sorted(ids.union(self.after)))


class PipelineSettings(_Model):
    """Pipeline-wide settings; steps inherit what they do not set.

    ``on_success`` and ``on_failure`` are the sources of the pipeline's hooks,
    run once when a run settles (they are not inherited by steps).
    """

    enable_cache: bool = True
    extra: dict[str, dict[str, JsonValue]] = {}
    on_success: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()

    @field_validator("on_success", "on_failure")
    @classmethod
    def _hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_hooks(value)


class PipelineIR(_Model):
    """A traced pipeline: its parameters and its steps in topological order.

    ``notebook`` is the text of the ``conveyor_notebook`` module when steps,
    materializers or parameter models were defined in Jupyter or IPython
    cells: step processes build that module from it (left out of the JSON
    when None, so pipelines defined in files serialize as before).
    """

    ir_version: int = IR_VERSION
    name: str
    source: str | None = None
    parameters: dict[str, JsonValue] = {}
    steps: tuple[StepIR, ...] = ()
    settings: PipelineSettings = PipelineSettings()
    model: ModelIR | None = None
    """The model each run works on: a new version per run, linked to its steps and artifacts."""
    notebook: str | None = None
    """The definitions of the notebook cells its steps come from (importable where steps run)."""

    @model_serializer(mode="wrap")
    def _without_empty_notebook(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("notebook") is None:
            data.pop("notebook", None)
        return data

    tags: tuple[str, ...] = ()
    """Tags every run of the pipeline starts with (sorted, each once)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "pipeline name")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            check_name(tag, "tag")
        return tuple(sorted(set(value)))

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            check_name(name, "parameter name")
        return value

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineIR:
        seen: set[str] = set()
        for s in self.steps:
            if s.id in seen:
                raise ValueError(f"duplicate step id {s.id!r}")
            for up in s.upstream():
                if up not in seen:
                    raise ValueError(f"step {s.id!r} depends on {up!r}, which does not come before it")
            seen.add(s.id)
        return self

    def step(self, step_id: str) -> StepIR:
        """Return the step with this invocation id (KeyError if absent)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def downstream(self) -> dict[str, tuple[str, ...]]:
        """Map each step id to the ids of the steps that wait for it directly."""
        out: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for up in s.upstream():
                out[up].append(s.id)
        return {k: tuple(v) for k, v in out.items()}

    def model_for(self, step: StepIR) -> tuple[ModelIR, str] | None:
        """The model a step's run links to, and the scope of its version within the run.

        The scope is ``""`` for the pipeline's model (one version per run) and
        the step id for a step's own model (one version per step run); a step
        whose model has the pipeline model's name and version shares the run's version.
        """
        own = step.settings.model
        shared = (
            self.model is not None
            and own is not None
            and (own.name, own.version)
            == (
                self.model.name,
                self.model.version,
            )
        )
        if own is not None and not shared:
            return own, step.id
        if self.model is not None:
            return self.model, ""
        return None

    def effective_cache(self, step: StepIR) -> bool:
        """Whether caching applies to a step (its own setting, else the pipeline's)."""
        if step.settings.enable_cache is not None:
            return step.settings.enable_cache
        return self.settings.enable_cache


class ComponentIR(_Model):
    """A stack component as the deployment carries it (secrets stay as references)."""

    type: str
    flavor: str
    name: str
    config: dict[str, JsonValue] = {}


class StackIR(_Model):
    """A stack: one component per component type."""

    name: str
    components: dict[str, ComponentIR]

    def get(self, component_type: str) -> ComponentIR | None:
        """The component of a type, or None."""
        return self.components.get(component_type)

    def __iter__(self) -> Iterator[ComponentIR]:  # type: ignore[override]
        return iter(self.components[k] for k in sorted(self.components))


class Schedule(_Model):
    """When a deployed pipeline runs: a cron expression or a fixed interval."""

    cron: str | None = None
    interval_seconds: float | None = Field(default=None, gt=0)
    start_date: datetime | None = None
    end_date: datetime | None = None
    catchup: bool = False

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("a schedule needs exactly one of cron= or interval_seconds=")
        return self


class Deployment(_Model):
    """What an orchestrator receives: pipeline, stack, schedule and images.

    ``images`` maps a step id to the image it runs in (``""`` for the
    pipeline-wide image). The deployment id is the hash of its canonical JSON.
    """

    ir_version: int = IR_VERSION
    pipeline: PipelineIR
    stack: StackIR
    schedule: Schedule | None = None
    run_name: str | None = None
    images: dict[str, str] = {}

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        if value is not None:
            problem = run_name_template_problem(value)
            if problem is not None:
                raise ValueError(f"run_name {shown(value)} {problem}")
        return value

    @functools.cached_property
    def id(self) -> str:
        """Content hash of the deployment (stable across machines), computed once per object (it is frozen)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:32]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Deployment:
        """A copy, with ``update`` applied; its ``id`` is the hash of its own content."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("id", None)
        return copied

    def image_for(self, step_id: str) -> str | None:
        """The image a step runs in, if the deployment has images."""
        return self.images.get(step_id) or self.images.get("")


def load_deployment(data: str | bytes | Mapping[str, Any]) -> Deployment:
    """Parse a deployment from JSON text or plain data, checking its IR version."""
    raw = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
    version = raw.get("ir_version")
    if version != IR_VERSION:
        raise ValueError(
            f"deployment has IR version {version}, this conveyor reads version {IR_VERSION}; "
            "install the same conveyor version on the submitting and the running side"
        )
    return Deployment.model_validate(raw)
