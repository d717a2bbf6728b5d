"""Model versions in runs: the version a step works in, and the artifacts of versions steps load.

Every engine runs steps through :func:`conveyor.runtime.execute_step`, so a
run links to its model version, and a step finds the version it loads, the
same way on every stack.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError, NotFoundError

if TYPE_CHECKING:
    from conveyor.ir import ModelInput, PipelineIR, StepIR
    from conveyor.runtime._executor import RunEnvironment
    from conveyor.stores import ArtifactRecord, MetadataStore, ModelVersionRecord

_locks_guard = threading.Lock()
_MAX_SCOPE = 200


def model_version_for(env: RunEnvironment, step: StepIR) -> ModelVersionRecord | None:
    """The model version a step of this run works in (created on first use), or None without a model.

    A pipeline's model gives one version per run; a step's own model one
    version per step run. Steps of a run that run in this process ask the
    store once per version.
    """
    found = env.deployment.pipeline.model_for(step)
    if found is None:
        return None
    model, scope = found
    if len(scope.encode()) > _MAX_SCOPE:  # the key must fit its column: a long step id is hashed
        import hashlib

        scope = hashlib.sha256(scope.encode()).hexdigest()
    key = f"run:{env.run.id}" + (f"/step:{scope}" if scope else "")
    wanted = (model.name, model.version, key)
    with _locks_guard:
        lock = env._model_locks.setdefault(wanted, threading.Lock())
    with lock:
        record = env._model_versions.get(wanted)
        if record is None:
            record = env.store.get_or_create_model_version(
                model.name, version=model.version, key=key, run_id=env.run.id, model_fields=model.fields()
            )
            env._model_versions[wanted] = record
    return record


def reference_of(inp: ModelInput, overrides: Mapping[str, Any]) -> ModelInput:
    """The model reference a step input stands for in this run (its pipeline parameter may be overridden).

    Raises:
        ConfigError: the overriding value is not a model reference.
    """
    from conveyor.ir import ModelInput, parse_model_reference, shown

    name = inp.pipeline_parameter
    if name is None or name not in overrides:
        return inp
    value = overrides[name]
    try:
        parsed = parse_model_reference(value) if isinstance(value, str) else None
    except ValueError as exc:
        raise ConfigError(
            f"pipeline parameter {name!r} is {shown(value)}, which is not a model reference: {exc}"
        ) from None
    if parsed is None:
        raise ConfigError(
            f"pipeline parameter {name!r} is {shown(value)}, which is not a model reference",
            "write MODEL@VERSION, e.g. 'churn@production'",
        )
    model, version, artifact = parsed
    return ModelInput(model=model, version=version, artifact=artifact or inp.artifact, pipeline_parameter=name)


def resolve_model_input(
    store: MetadataStore,
    step: StepIR,
    name: str,
    inp: ModelInput,
    annotation: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[ModelVersionRecord, ArtifactRecord]:
    """The model version a step input names and the artifact of it the step loads.

    The artifact is the one the reference names; else the one named like the
    input; else the only one of the input's type; else the version's only one.

    Raises:
        NotFoundError: no such model, version, alias or artifact (naming the closest).
        ConfigError: several artifacts could be meant.
    """
    ref = reference_of(inp, overrides or {})
    version = store.get_model_version(ref.model, ref.version)
    artifacts = store.model_version_artifacts(version.id)
    return version, _choose(version, artifacts, ref, step, name, annotation)


def _choose(
    version: ModelVersionRecord,
    artifacts: dict[str, ArtifactRecord],
    ref: ModelInput,
    step: StepIR,
    name: str,
    annotation: Any,
) -> ArtifactRecord:
    import difflib

    label = f"version {version.number} of model {version.model_name!r}"
    names = sorted(artifacts)
    listing = f"its artifacts are: {', '.join(names)}" if names else "it has no artifacts"
    if ref.artifact is not None:
        if ref.artifact in artifacts:
            return artifacts[ref.artifact]
        close = difflib.get_close_matches(ref.artifact, names, n=1)
        raise NotFoundError(
            f"{label} has no artifact {ref.artifact!r}", (f"did you mean {close[0]!r}? " if close else "") + listing
        )
    if name in artifacts:
        return artifacts[name]
    if annotation is not None:
        fits = [a for a in artifacts.values() if a.data_type == _type_source(annotation)]
        if len(fits) == 1:
            return fits[0]
    if len(artifacts) == 1:
        return next(iter(artifacts.values()))
    if not artifacts:
        raise NotFoundError(f"{label} has no artifacts", "its run produced none yet; load another version")
    raise ConfigError(
        f"step {step.id!r} input {name!r} loads {label}, which has {len(artifacts)} artifacts and none named {name!r}",
        f"name one: '{ref.model}@{ref.version}/ARTIFACT' or Model(...).artifact('ARTIFACT'); {listing}",
    )


def _type_source(annotation: Any) -> str | None:
    from conveyor._source import source_of
    from conveyor.dsl import runtime_type

    tp = runtime_type(annotation)
    try:
        return source_of(tp) if isinstance(tp, type) else None
    except Exception:  # noqa: BLE001 - a local class: no recorded type can match it
        return None


def check_models(store: MetadataStore, pipeline: PipelineIR, annotations: Mapping[tuple[str, str], Any]) -> None:
    """Before a run: every model version its steps load, and every version it attaches to by number, exists.

    Args:
        annotations: ``{(step id, input name): annotation}`` of the model inputs, for picking artifacts by type.

    Raises:
        NotFoundError, ConfigError: a model, version, alias or artifact that is not there (one line).
    """
    from conveyor.ir import LATEST, ModelInput

    checked: set[tuple[str, str]] = set()
    for step in pipeline.steps:
        found = pipeline.model_for(step)
        if found is not None:
            model = found[0]
            wanted = model.version
            # A named version is created by the first run that asks; a number or latest must exist.
            if wanted is not None and (wanted == LATEST or wanted.isdigit()) and (model.name, wanted) not in checked:
                store.get_model_version(model.name, wanted)
                checked.add((model.name, wanted))
        for name, inp in step.inputs.items():
            if isinstance(inp, ModelInput):
                resolve_model_input(store, step, name, inp, annotations.get((step.id, name)))
