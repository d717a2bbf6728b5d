"""Request and response bodies of the server's API (pydantic): what the OpenAPI document describes.

Every field that lands in a database column carries that column's limits,
so a value that cannot be stored is a 422 naming the field, never a
database error.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

INT32 = 2**31 - 1

Id = Annotated[str, Field(min_length=1, max_length=32)]
Name = Annotated[str, Field(min_length=1, max_length=255)]
Hash = Annotated[str, Field(min_length=1, max_length=64)]
Text1k = Annotated[str, Field(max_length=1024)]
Text2k = Annotated[str, Field(max_length=2048)]
Text = Annotated[str, Field(max_length=1_000_000)]
Status = Literal["running", "completed", "failed", "stopped", "cached", "skipped"]
FinalStatus = Literal["completed", "failed", "stopped"]
Count = Annotated[int, Field(ge=0, le=INT32)]
Json = dict[str, Any]
Links = dict[Name, Id]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]


class Model(BaseModel):
    """Bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


# -- records (responses) -----------------------------------------------------------------
class PipelineOut(Model):
    """A pipeline."""

    id: str
    name: str
    created: datetime


class RunOut(Model):
    """A pipeline run."""

    id: str
    name: str
    pipeline_id: str
    deployment_id: str
    run_key: Optional[str]
    status: str
    created: datetime
    started: Optional[datetime]
    ended: Optional[datetime]
    parameters: Json
    stack_name: str
    orchestrator: str
    orchestrator_run_id: Optional[str]
    code_commit: Optional[str]
    code_dirty: Optional[bool]
    host: Optional[str]
    pid: Optional[int]
    pid_started: Optional[float]
    error: Optional[str]
    extra: Json
    tags: list[str] = []


class StepRunOut(Model):
    """One step of one run."""

    id: str
    run_id: str
    step_id: str
    step_name: str
    status: str
    cached: bool
    cache_key: Optional[str]
    original_step_run_id: Optional[str]
    started: Optional[datetime]
    ended: Optional[datetime]
    source: str
    code_hash: str
    parameters: Json
    logs_uri: Optional[str]
    error: Optional[str]
    attempts: int
    image: Optional[str]
    metadata: Optional[Json] = None


class ArtifactOut(Model):
    """An artifact version."""

    id: str
    name: str
    version: int
    uri: str
    data_type: str
    materializer: str
    content_hash: str
    producer_step_run_id: Optional[str]
    created: datetime
    metadata: Json
    visualizations: Json
    manifest: Optional[dict[str, int]] = None
    pipeline_name: Optional[str] = None
    step_id: Optional[str] = None
    removed: Optional[datetime] = None


class HookInvocationOut(Model):
    """One run of a hook."""

    id: str
    run_id: Optional[str]
    pipeline_name: str
    step_id: Optional[str]
    event: str
    position: int
    hook: str
    status: str
    started: datetime
    ended: Optional[datetime]
    error: Optional[str]


class ModelOut(Model):
    """A model of the model control plane."""

    id: str
    name: str
    description: Optional[str]
    tags: list[str]
    license: Optional[str]
    latest_version: int
    created: datetime
    updated: datetime


class ModelVersionOut(Model):
    """A version of a model, with the aliases that point at it."""

    id: str
    model_id: str
    model_name: str
    number: int
    name: Optional[str]
    run_id: Optional[str]
    created: datetime
    aliases: list[str]


class ModelVersionLinkOut(Model):
    """A step run, an artifact or logged metadata linked to a model version."""

    model_version_id: str
    model_name: str
    version_number: int
    run_id: str
    step_run_id: Optional[str]
    role: str
    artifact_id: Optional[str]
    name: Optional[str]
    metadata: Json
    created: datetime


class ModelAliasEventOut(Model):
    """One move of a model's alias."""

    model_name: str
    alias: str
    from_version: Optional[int]
    to_version: Optional[int]
    moved_by: str
    created: datetime


class ComponentOut(Model):
    """A stack component (configs hold secret references, never values)."""

    id: str
    type: str
    flavor: str
    name: str
    config: Json
    created: datetime
    updated: datetime
    install: Optional[str] = None


class StackOut(Model):
    """A stack with its components."""

    id: str
    name: str
    components: dict[str, ComponentOut]
    created: datetime
    updated: datetime


class CacheHit(Model):
    """A completed step run with this cache key, and its outputs."""

    step_run: StepRunOut
    outputs: dict[str, ArtifactOut]


class SecretInfoOut(Model):
    """A secret without its values."""

    name: str
    schema_: str = Field(alias="schema")
    keys: list[str]
    owner: str
    shared: bool
    mine: bool
    key_id: str
    created: datetime
    updated: datetime

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResolvedSecret(Model):
    """A secret with its values, for a caller allowed to use them."""

    info: SecretInfoOut
    values: dict[str, str]


class ResolvedSecrets(Model):
    """``{name: secret}``."""

    secrets: dict[str, ResolvedSecret]


class RotationOut(Model):
    """What a key rotation did."""

    rotated: int
    skipped: int
    old_key_ids: list[str]
    new_key_id: str
    source: str


class UserOut(Model):
    """A user or service account (never a password hash)."""

    name: str
    kind: str
    role: str
    created: datetime


class Me(Model):
    """Who the caller is."""

    name: str
    kind: str
    role: str
    credential: str
    run_id: Optional[str] = None


class TokenOut(Model):
    """A credential, shown once."""

    token: str
    expires: Optional[datetime] = None


class ApiKeyOut(Model):
    """A service account and its new API key (shown once)."""

    account: UserOut
    api_key: str


class Changed(Model):
    """Whether a conditional update changed anything."""

    changed: bool


class Settled(Model):
    """Whether this call settled the run."""

    settled: bool


class IdOut(Model):
    """The id of what was made."""

    id: Optional[str]


class OutputsOut(Model):
    """``{output name: artifact id}`` of a completed step."""

    outputs: dict[str, str]
    artifacts: Optional[dict[str, ArtifactOut]] = None
    """The new artifacts' records, when the request asked for them."""


class Problem(Model):
    """An error: one line, and how to fix it."""

    error: str
    hint: Optional[str] = None
    type: Optional[str] = None


class VersionOut(Model):
    """Versions of the server and its API."""

    version: str
    api_version: int


# -- requests ------------------------------------------------------------------------------
class PipelineIn(Model):
    """The pipeline to get or create."""

    name: Name


class DeploymentIn(Model):
    """A deployment's canonical JSON."""

    pipeline_id: Id
    ir_json: Annotated[str, Field(min_length=2, max_length=32 * 1024 * 1024)]


class RunValues(Model):
    """Fields of a run (all optional: updates send only what changes)."""

    id: Optional[Id] = None
    name: Optional[Name] = None
    pipeline_id: Optional[Id] = None
    deployment_id: Optional[Id] = None
    run_key: Optional[Name] = None
    status: Optional[Status] = None
    created: Optional[datetime] = None
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    parameters: Optional[Json] = None
    stack_name: Optional[Name] = None
    orchestrator: Optional[Name] = None
    orchestrator_run_id: Optional[Name] = None
    code_commit: Optional[Hash] = None
    code_dirty: Optional[bool] = None
    host: Optional[Name] = None
    pid: Optional[Count] = None
    pid_started: Optional[Finite] = None
    error: Optional[Text] = None
    extra: Optional[Json] = None


class NewRunValues(RunValues):
    """Fields of a new run: what it needs to exist (and the tags it starts with: the store judges them)."""

    tags: Optional[list[Text1k]] = Field(default=None, max_length=1000)

    name: Name
    pipeline_id: Id
    deployment_id: Id
    status: Status
    stack_name: Name
    orchestrator: Name


class RunIn(Model):
    """A new run."""

    values: NewRunValues


class JoinIn(Model):
    """The run of an engine's run key, made with ``values`` by whoever asks first."""

    run_key: Name
    values: NewRunValues


class RunUpdateIn(Model):
    """Fields to change, and the status the run must still have."""

    only_if_status: Optional[Status] = None
    values: RunValues


class TagsIn(Model):
    """Tags to add to a run and tags to remove from it (the store judges each)."""

    add: list[Text1k] = Field(default=[], max_length=1000)
    remove: list[Text1k] = Field(default=[], max_length=1000)


class TagsOut(Model):
    """A run's tags, sorted."""

    tags: list[str]


class DeletedRunOut(Model):
    """Log files of a deleted run that no remaining step run refers to (the caller removes them)."""

    logs: list[str]


class SettleIn(Model):
    """A run's final status."""

    status: FinalStatus
    error: Optional[Text] = None
    running_steps: Optional[Status] = None


class StepRunValues(Model):
    """Fields of a step run."""

    step_name: Optional[Name] = None
    status: Optional[Status] = None
    cached: Optional[bool] = None
    cache_key: Optional[Hash] = None
    original_step_run_id: Optional[Id] = None
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    source: Optional[Text1k] = None
    code_hash: Optional[Hash] = None
    parameters: Optional[Json] = None
    logs_uri: Optional[Text2k] = None
    error: Optional[Text] = None
    attempts: Optional[Count] = None
    image: Optional[Text1k] = None
    metadata: Optional[Json] = None


class StepStartIn(Model):
    """A step (or another attempt of it) starting."""

    require_running: bool = False
    values: StepRunValues


class RecordedStepValues(StepRunValues):
    """A finished step run recorded in one go."""

    step_name: Name
    status: Status
    source: Text1k
    code_hash: Hash


class StepRecordIn(Model):
    """A finished step run (cached or skipped) with its artifact links."""

    require_running: bool = False
    inputs: Links = {}
    outputs: Links = {}
    values: RecordedStepValues


class StepFinishIn(Model):
    """A step run's final status and its links."""

    status: Status
    inputs: Links = {}
    outputs: Links = {}
    values: StepRunValues


class HookClaimIn(Model):
    """A hook about to run: which one, for which run and step."""

    pipeline_name: Name
    run_id: Optional[Id] = None
    step_id: Optional[Name] = None
    event: Literal["success", "failure"]
    position: Count
    hook: Text1k


class HookClaimOut(Model):
    """The claimed invocation's id, or null when another process claimed the hook first."""

    id: Optional[str]


class HookFinishIn(Model):
    """How a claimed hook ended."""

    status: Literal["completed", "failed"]
    error: Optional[Text] = None


class ArtifactValues(Model):
    """A new artifact version (numbered by the server)."""

    id: Optional[Id] = None
    name: Name
    uri: Text2k
    data_type: Text1k
    materializer: Text1k
    content_hash: Hash
    producer_step_run_id: Optional[Id] = None
    created: Optional[datetime] = None
    metadata: Json = {}
    visualizations: Json = {}
    manifest: Optional[dict[Text2k, Count]] = None
    pipeline_name: Optional[Name] = None
    step_id: Optional[Name] = None


class ArtifactIn(Model):
    """An artifact to register."""

    values: ArtifactValues


class StepCompleteIn(Model):
    """A step's new artifacts, registered as it is marked completed."""

    inputs: Links = {}
    new_artifacts: dict[Name, ArtifactValues]
    require_running: bool = False
    values: StepRunValues
    answer_artifacts: bool = False
    """Answer the new artifacts' records too (a process running the next steps reads them without asking)."""


class ModelFieldsIn(Model):
    """What a new version records on its model."""

    description: Optional[Text] = None
    tags: Optional[list[Name]] = None
    license: Optional[Name] = None


# Model, version and alias names are the store's to judge (its messages name what is wrong with them).
class ModelVersionIn(Model):
    """The model version a run works in (created when it does not exist)."""

    model: Text1k
    version: Optional[Text1k] = None
    key: Optional[Text1k] = None
    run_id: Optional[Id] = None
    # The store's model_fields (pydantic keeps that name for itself).
    fields: Optional[ModelFieldsIn] = None


class ModelAliasIn(Model):
    """Where an alias of a model points (a null version removes it)."""

    model: Text1k
    alias: Text1k
    version_id: Optional[Text1k] = None


class ModelLinkIn(Model):
    """A step run's link to a model version."""

    run_id: Id
    step_run_id: Id
    # Any text: the store names the roles it takes, in the same words as on a SQL store.
    role: Name
    artifacts: Links = {}
    metadata: Json = {}


class ComponentIn(Model):
    """A stack component to register."""

    type: Annotated[str, Field(min_length=1, max_length=64)]
    flavor: Name
    name: Name
    config: Json = {}
    install: Optional[Text1k] = None


class ComponentUpdateIn(Model):
    """A component's new config."""

    config: Json


class StackIn(Model):
    """A stack from ``{component type: component id}``."""

    name: Name
    component_ids: dict[Annotated[str, Field(min_length=1, max_length=64)], Id]
    create: bool


class EnsureComponent(Model):
    """A component of a stack to create if missing."""

    name: Name
    flavor: Name
    config: Json = {}


class EnsureStackIn(Model):
    """A stack to create with its components, unless it exists."""

    name: Name
    components: dict[Annotated[str, Field(min_length=1, max_length=64)], EnsureComponent]


SecretName = Annotated[str, Field(min_length=1, max_length=255)]


# Names, keys and values are checked by the secrets store itself, so the errors are the ones a SQL store gives.
class SecretIn(Model):
    """A new secret."""

    name: Annotated[str, Field(max_length=10_000)]
    values: dict[Annotated[str, Field(max_length=10_000)], Any]
    schema_: str = Field(default="plain", alias="schema", max_length=64)
    shared: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretUpdateIn(Model):
    """Changes to a secret."""

    values: dict[Annotated[str, Field(max_length=10_000)], Any] = {}
    remove_keys: list[Annotated[str, Field(max_length=255)]] = []
    replace: bool = False
    shared: Optional[bool] = None


class ResolveIn(Model):
    """Secrets whose values a caller needs."""

    names: Annotated[list[SecretName], Field(min_length=1, max_length=100)]


class LoginIn(Model):
    """A user's name and password."""

    username: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(min_length=1, max_length=4096)]


class UserIn(Model):
    """A new user."""

    name: Name
    role: Literal["viewer", "editor", "admin"]
    password: Annotated[str, Field(min_length=8, max_length=4096)]


class ServiceAccountIn(Model):
    """A new service account."""

    name: Name
    role: Literal["runner", "viewer", "editor", "admin"]
