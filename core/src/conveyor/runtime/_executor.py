"""Running one step of a stored deployment: the *what* that every engine shares.

Inputs are resolved from the stores, the cache is consulted, the function
runs, outputs are written atomically and the step run is recorded. The local
orchestrator calls :func:`execute_step` in-process or through
``python -m conveyor.runtime run-step``; Airflow tasks, KFP containers and
Prefect tasks run that same command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._source import load_source, source_of
from conveyor.constants import ENV_SOURCE_ROOT
from conveyor.dsl import SINGLE_OUTPUT, Step, parameter_adapter, runtime_type, type_name, value_matches
from conveyor.exceptions import ConfigError, ConveyorError, RunSettledError, StepFailedError
from conveyor.ir import ArtifactInput, Deployment, ModelInput, ParameterInput, StepIR, canonical_json, shown
from conveyor.materializers import registry
from conveyor.runtime._context import StepContext, reset_step_context, set_step_context
from conveyor.runtime._hooks import FAILURE, SUCCESS, run_step_hooks, settle_run
from conveyor.runtime._logs import capture_logs
from conveyor.runtime._models import model_version_for, resolve_model_input
from conveyor.stores import ArtifactRecord, ModelLinkRole, RunRecord, RunStatus, StepRunRecord, now

if TYPE_CHECKING:
    from conveyor.stack import Stack
    from conveyor.stores import ArtifactStore, MetadataStore, ModelVersionRecord

SecretLoader = Any
_secret_loader: list[SecretLoader] = []


def set_secret_loader(loader: SecretLoader) -> None:
    """Install the function ``(store, name) -> {key: value}`` that steps' secrets come from."""
    _secret_loader[:] = [loader]


@dataclass
class RunEnvironment:
    """Everything a step needs around it: stores, stack, deployment and run."""

    store: MetadataStore
    stack: Stack
    deployment: Deployment
    run: RunRecord
    overrides: dict[str, Any] = field(default_factory=dict)
    image: str | None = None
    #: Put each step's id at the start of the lines it writes to the terminal (steps side by side).
    prefix_output: bool = False
    _upstream: dict[str, dict[str, ArtifactRecord]] = field(default_factory=dict)
    # The run's model versions, asked for once per process: {(model, version, key): record}.
    _model_versions: dict[tuple[Any, ...], ModelVersionRecord] = field(default_factory=dict)
    _model_locks: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    @property
    def artifact_store(self) -> ArtifactStore:
        """The stack's artifact store."""
        return self.stack.artifact_store

    @property
    def owned(self) -> bool:
        """Whether a process on some machine drives the run; once it is settled, steps record nothing into it."""
        return self.run.pid is not None


def _parameters(step: StepIR, step_obj: Step, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the step's annotations want them.

    They arrive as JSON (from some engines with ints as floats, or as text
    from a UI); a value that does not fit fails the step, naming the parameter.
    """
    from pydantic import ValidationError

    out = {}
    for name, value in params.items():
        annotation = step_obj.input_types[name]
        if annotation is Any:
            out[name] = value
            continue
        try:
            out[name] = parameter_adapter(annotation).validate_python(value)
        except ValidationError as exc:
            problem = str(exc.errors()[0]["msg"])
            raise ConfigError(
                f"parameter {name!r} of step {step.id!r} is {shown(value)}, which is not a valid "
                f"{type_name(annotation)}: {problem}",
                "pass a value of the annotated type",
            ) from None
    return out


def _step_object(step: StepIR) -> Step:
    obj = load_source(step.source)
    if isinstance(obj, Step):
        return obj
    raise ConveyorError(f"{step.source!r} is not a @step", "decorate the function with @step")


def artifact_name(pipeline: str, step: StepIR, output: str) -> str:
    """The name an output is versioned under: the one given with ``ArtifactConfig(name=...)``, else
    ``<pipeline>::<step id>::<output>`` (``::`` is in no name, so scoped and given names never meet)."""
    given = step.outputs[output].artifact_name
    return given if given is not None else f"{pipeline}::{step.id}::{output}"


def _model_artifact_name(step: StepIR, output: str, name: str) -> str:
    """The name a model version knows an output by: the output's own name (``version.artifacts["model"]``),
    not the name it is versioned under (scoped to its pipeline and step unless given with ``ArtifactConfig``)."""
    if output == SINGLE_OUTPUT or step.outputs[output].artifact_name is not None:
        return name
    return output


def _output_materializer_source(step: StepIR, step_obj: Step, output: str) -> str:
    explicit = step.outputs[output].materializer
    if explicit is not None:
        return explicit
    tp = runtime_type(step_obj.output_types[output])
    if tp is Any:
        return "auto"
    return source_of(registry.get(tp, where=f"output {output!r} of step {step.id!r}"))


def cache_key(
    step: StepIR,
    params: dict[str, Any],
    inputs: dict[str, ArtifactRecord],
    materializers: dict[str, str],
    image: str | None,
) -> str:
    """The content-based, stack-independent key of a step's result.

    It holds the step's code, parameters, the content hashes of its inputs,
    its output materializers, the image it runs in, and its environment
    variables as written: a ``{{secret.key}}`` reference, not the secret's
    value (values must not reach the store, and a rotated credential does
    not change what a step computes).
    """
    data = {
        "source": step.source,
        "code": step.code_hash,
        "parameters": params,
        "inputs": {k: v.content_hash for k, v in sorted(inputs.items())},
        "materializers": materializers,
        "image": image,
    }
    if step.settings.environment:
        data["environment"] = step.settings.environment
    given = {o: spec.artifact_name for o, spec in sorted(step.outputs.items()) if spec.artifact_name}
    if given:  # a hit reuses the cached records, so a renamed artifact must not be one
        data["artifact_names"] = given
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _resolve_inputs(
    env: RunEnvironment, step: StepIR, step_obj: Step
) -> tuple[dict[str, Any], dict[str, ArtifactRecord], dict[str, ModelVersionRecord]]:
    params: dict[str, Any] = {}
    artifacts: dict[str, ArtifactRecord] = {}
    used: dict[str, ModelVersionRecord] = {}  # {input name: the model version it loads}
    for name, inp in step.inputs.items():
        if isinstance(inp, ParameterInput):
            value = inp.value
            if inp.pipeline_parameter is not None and inp.pipeline_parameter in env.overrides:
                value = env.overrides[inp.pipeline_parameter]
            params[name] = value
        elif isinstance(inp, ArtifactInput):
            outs = env._upstream.get(inp.step)
            if outs is None:
                outs = env.store.outputs_of_step(env.run.id, inp.step)
                env._upstream[inp.step] = outs
            try:
                artifacts[name] = outs[inp.output]
            except KeyError:
                raise ConveyorError(
                    f"step {inp.step!r} recorded no output {inp.output!r} in run {env.run.name!r}"
                ) from None
        elif isinstance(inp, ModelInput):
            # Read when the step runs: an alias moved since the pipeline was deployed is followed.
            used[name], artifacts[name] = resolve_model_input(
                env.store, step, name, inp, step_obj.input_types.get(name), env.overrides
            )
    return params, artifacts, used


def _cache_hit(env: RunEnvironment, key: str) -> tuple[StepRunRecord, dict[str, ArtifactRecord]] | None:
    store = env.artifact_store
    for record, outputs in env.store.find_cached(key):
        # A hit must be readable from this stack's store, and every file of it still there, whole.
        if all(_intact(store, a) for a in outputs.values()):
            return record, outputs
    return None


def _intact(store: ArtifactStore, artifact: ArtifactRecord) -> bool:
    if not store.contains(artifact.uri):
        return False
    if artifact.manifest is None:  # saved before manifests were recorded
        return store.exists(artifact.uri)
    found = store.manifest(artifact.uri)
    if found == artifact.manifest:
        return True
    missing = sorted(set(artifact.manifest) - set(found))
    changed = sorted(n for n in artifact.manifest if n in found and found[n] != artifact.manifest[n])
    what = (
        f"{missing[0]!r} is missing" if missing else f"{changed[0]!r} changed size" if changed else "it has extra files"
    )
    print(
        f"conveyor: cached artifact {artifact.name} v{artifact.version} at {artifact.uri} is damaged ({what}); "
        "running the step again",
        file=sys.stderr,
    )
    return False


def _source_roots() -> list[str]:
    roots = [os.getcwd()]
    root = os.environ.get(ENV_SOURCE_ROOT)
    if root:
        roots.append(root)
    return roots


def _load_artifact(env: RunEnvironment, step: StepIR, name: str, record: ArtifactRecord, annotation: Any) -> Any:
    from conveyor.materializers import trusted_materializer, trusted_type

    inp = step.inputs[name]
    declared = set()
    if isinstance(inp, ArtifactInput):
        spec = env.deployment.pipeline.step(inp.step).outputs.get(inp.output)
        if spec is not None and spec.materializer:
            declared.add(spec.materializer)  # this pipeline chose it for that output
    roots = _source_roots()
    cls = trusted_materializer(record.materializer, declared=declared, roots=roots)
    data_type = runtime_type(annotation)
    if data_type is Any:
        data_type = trusted_type(record.data_type, roots=roots, also=cls.ASSOCIATED_TYPES)
    return cls(env.artifact_store.check_inside(record.uri), env.artifact_store).load(data_type)


def _check_output(step: StepIR, name: str, value: Any, annotation: Any) -> None:
    if not value_matches(annotation, value):
        raise ConfigError(
            f"step {step.id!r} returned a {type(value).__name__} for output {name!r}, which is declared "
            f"{type_name(annotation)}",
            "return a value of the declared type, or change the annotation",
        )


def _split_outputs(step: StepIR, step_obj: Step, result: Any) -> dict[str, Any]:
    names = list(step_obj.output_types)
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: result}
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise StepFailedError(f"step {step.id!r} declares {len(names)} outputs ({', '.join(names)}) but returned {got}")
    return dict(zip(names, result, strict=True))


def _save_output(
    env: RunEnvironment, step: StepIR, output: str, value: Any, materializer_source: str, written: list[str]
) -> dict[str, Any]:
    store = env.artifact_store
    if materializer_source == "auto":
        cls = registry.get(type(value), where=f"output {output!r} of step {step.id!r}")
    else:
        cls = load_source(materializer_source)
    uri = store.join(env.deployment.pipeline.name, step.id, env.run.name, output)
    return {
        "name": artifact_name(env.deployment.pipeline.name, step, output),
        "pipeline_name": env.deployment.pipeline.name,
        "step_id": step.id,
        **write_artifact(store, uri, cls, value, written),
    }


def write_artifact(
    store: ArtifactStore, uri: str, cls: Any, value: Any, written: list[str] | None = None
) -> dict[str, Any]:
    """Save ``value`` with materializer ``cls`` at ``uri``, atomically; returns the artifact record's fields.

    Args:
        written: where to note the folders written, for a caller that removes them on failure;
            without it, a failed save removes what it wrote itself.
    """
    tmp = store.begin_artifact(uri)
    noted = written if written is not None else []
    noted.append(tmp)
    try:
        materializer = cls(tmp, store)
        materializer.save(value)
        content_hash = store.content_hash(tmp)
        metadata = materializer.extract_metadata(value) or {}
        visualizations = {_relative(k, tmp): v for k, v in (materializer.save_visualizations(value) or {}).items()}
        manifest = store.manifest(tmp)
        store.commit(tmp, uri)
        noted[-1] = uri
    except BaseException:
        if written is None:
            store.rmtree(noted[-1])
        raise
    data_type = type(value)
    return {
        "uri": uri,
        "data_type": source_of(data_type) if "<locals>" not in data_type.__qualname__ else data_type.__qualname__,
        "materializer": source_of(cls),
        "content_hash": content_hash,
        "metadata": metadata,
        "visualizations": visualizations,
        "manifest": manifest,
    }


def _relative(uri: str, base: str) -> str:
    return uri[len(base) :].lstrip("/\\") if uri.startswith(base) else uri


def _load_secrets(env: RunEnvironment, step: StepIR) -> dict[str, dict[str, str]]:
    # The step's declared secrets, and {{name.key}} references in its
    # environment resolved into os.environ; every value is masked in its logs.
    environment = step.settings.environment
    if not step.settings.secrets and not any("{{" in v for v in environment.values()):
        return {}
    from conveyor.secrets import load_step_secrets, mask_values

    if _secret_loader:  # a store installed with set_secret_loader() replaces conveyor's own
        secrets = {name: _secret_loader[0](env.store, name) for name in step.settings.secrets}
        mask_values(v for values in secrets.values() for v in values.values())
        load_step_secrets(env.store, (), environment)
        return secrets
    return load_step_secrets(env.store, step.settings.secrets, environment)


_LINKS_LOCK = threading.Lock()


def add_run_link(store: MetadataStore, run_id: str, label: str, url: str) -> None:
    """Record a link of a run to another system (an experiment tracker's run page) in the run's ``extra``.

    Steps of one run may record links side by side: the write is checked and
    repeated until the link is there.
    """
    for _ in range(20):
        with _LINKS_LOCK:
            extra = dict(store.get_run(run_id).extra or {})
            links = dict(extra.get("links") or {})
            if links.get(label) == url:
                return
            links[label] = url
            extra["links"] = links
            store.update_run(run_id, extra=extra)
        time.sleep(0.05)


def execute_step(env: RunEnvironment, step_id: str) -> StepRunRecord:
    """Run one step of ``env.deployment`` in ``env.run``; record everything.

    Returns the finished step run (completed or cached).

    Raises:
        StepFailedError: the step raised, or returned the wrong outputs; the
            step run is recorded as failed with the traceback in its logs.
    """
    deployment = env.deployment
    step = deployment.pipeline.step(step_id)
    step_obj = _step_object(step)
    params, input_artifacts, used_models = _resolve_inputs(env, step, step_obj)
    materializers = {o: _output_materializer_source(step, step_obj, o) for o in step.outputs}
    key = cache_key(step, params, input_artifacts, materializers, env.image)
    written_params = {n: i.value for n, i in step.inputs.items() if isinstance(i, ParameterInput)}
    common: dict[str, Any] = {
        "step_name": step.name,
        "source": step.source,
        "code_hash": step.code_hash,
        # The deployment holds the parameters; a step run records only what the run changed.
        "parameters": {k: v for k, v in params.items() if written_params.get(k) != v},
        "cache_key": key,
        "image": env.image,
    }
    input_ids = {k: v.id for k, v in input_artifacts.items()}
    model_version = model_version_for(env, step)
    if deployment.pipeline.effective_cache(step):
        hit = _cache_hit(env, key)
        if hit is not None:
            original, outputs = hit
            sid = env.store.record_step_run(
                env.run.id,
                step_id,
                require_running=env.owned,
                status=RunStatus.CACHED,
                cached=True,
                original_step_run_id=original.id,
                started=now(),
                ended=now(),
                logs_uri=original.logs_uri,
                inputs=input_ids,
                outputs={k: v.id for k, v in outputs.items()},
                # What the step logged when it ran describes these outputs still.
                **({"metadata": original.metadata} if original.metadata else {}),
                **common,
            )
            env._upstream[step_id] = outputs
            # The cached artifacts, and what the step logged when it ran, belong to this run's version too.
            produced = {_model_artifact_name(step, output, a.name): a.id for output, a in outputs.items()}
            _link_models(env, sid, model_version, produced, original.metadata, used_models, input_ids)
            return StepRunRecord(
                id=sid,
                run_id=env.run.id,
                step_id=step_id,
                status=RunStatus.CACHED,
                cached=True,
                original_step_run_id=original.id,
                started=None,
                ended=None,
                logs_uri=original.logs_uri,
                error=None,
                attempts=0,
                metadata=original.metadata,
                **common,
            )

    store = env.artifact_store
    logs_uri = store.join(deployment.pipeline.name, step.id, env.run.name, "logs.txt")
    step_run = env.store.start_step_run(env.run.id, step_id, require_running=env.owned, logs_uri=logs_uri, **common)
    written: list[str] = []
    failure: BaseException | None = None
    ctx: StepContext | None = None
    with capture_logs(store, logs_uri, prefix=f"[{step.id}] " if env.prefix_output else "") as log:
        token = None
        try:
            kwargs = _parameters(step, step_obj, params)
            for name, record in input_artifacts.items():
                kwargs[name] = _load_artifact(env, step, name, record, step_obj.input_types[name])
            ctx = StepContext(
                pipeline_name=deployment.pipeline.name,
                run_id=env.run.id,
                run_name=env.run.name,
                step_id=step.id,
                step_name=step.name,
                attempt=step_run.attempts,
                artifact_store=store,
                secrets=_load_secrets(env, step),
                model_version=model_version,
                code_hash=step.code_hash,
                code_commit=env.run.code_commit,
                stack=env.stack,
                link_recorder=lambda label, url: add_run_link(env.store, env.run.id, label, url),
            )
            token = set_step_context(ctx)
            with contextlib.ExitStack() as scopes:
                # Trackers and validators the step names wrap its body; a server they cannot
                # reach fails the step here, before the body runs.
                for component in env.stack.step_components(step):
                    if hasattr(component, "step_scope"):
                        scopes.enter_context(component.step_scope(ctx))
                result = step_obj.entrypoint(**kwargs)
            reset_step_context(token)
            token = None
            values = _split_outputs(step, step_obj, result)
            for name, value in values.items():
                _check_output(step, name, value, step_obj.output_types[name])
            new_artifacts = {
                name: _save_output(env, step, name, value, materializers[name], written)
                for name, value in values.items()
            }
        except BaseException as exc:
            if token is not None:
                reset_step_context(token)
            for uri in written:
                store.rmtree(uri)  # nothing half-written or unregistered stays behind
            log.write(traceback.format_exc())
            failure = exc
    # What the step logged: nothing to write (and no extra store call) when it logged nothing.
    logged = dict(ctx.logged_metadata) if ctx is not None else {}
    extra = {"metadata": logged} if logged else {}
    if failure is not None:
        status = RunStatus.STOPPED if isinstance(failure, KeyboardInterrupt) else RunStatus.FAILED
        message = _error_line(failure)
        env.store.finish_step_run(step_run.id, status, inputs=input_ids, error=message, **extra)
        _link_models(env, step_run.id, model_version, {}, logged, used_models, input_ids)
        if status == RunStatus.FAILED and is_last_attempt(step, step_run.attempts):
            # The step failed for good and this process knows why: its failure hooks run here.
            run_step_hooks(env.store, deployment, env.run, step.id, FAILURE, error=message, stack=env.stack)
        if isinstance(failure, (KeyboardInterrupt, SystemExit)):
            raise failure
        if isinstance(failure, ConveyorError):
            raise StepFailedError(f"step {step.id!r} failed: {failure.message}", failure.hint) from failure
        raise StepFailedError(f"step {step.id!r} failed: {message}") from failure
    if logged:
        for artifact in new_artifacts.values():
            artifact["metadata"] = {**artifact["metadata"], **logged}
    try:
        output_ids = env.store.complete_step_run(
            step_run.id, inputs=input_ids, new_artifacts=new_artifacts, require_running=env.owned, **extra
        )
    except RunSettledError as exc:
        for uri in written:
            store.rmtree(uri)  # registered nowhere: nothing may refer to them
        raise StepFailedError(f"step {step.id!r} finished after its run ended: {exc.message}", exc.hint) from None
    produced = {
        _model_artifact_name(step, output, new_artifacts[output]["name"]): artifact_id
        for output, artifact_id in output_ids.items()
    }
    _link_models(env, step_run.id, model_version, produced, logged, used_models, input_ids)
    run_step_hooks(env.store, deployment, env.run, step.id, SUCCESS, stack=env.stack)
    return dataclasses.replace(step_run, status=RunStatus.COMPLETED, metadata=logged or None)


def _link_models(
    env: RunEnvironment,
    step_run_id: str,
    model_version: ModelVersionRecord | None,
    produced: dict[str, str],
    logged: dict[str, Any] | None,
    used: dict[str, ModelVersionRecord],
    inputs: dict[str, str],
) -> None:
    """Link a step run to the model version it worked in and to those it loaded (no store call without models).

    Args:
        produced: ``{artifact name: id}`` of the step's outputs.
        logged: what the step logged.
        used: ``{input name: model version}`` the step loaded.
        inputs: ``{input name: artifact id}``.
    """
    if model_version is not None:
        env.store.link_model_version(
            model_version.id,
            run_id=env.run.id,
            step_run_id=step_run_id,
            role=ModelLinkRole.PRODUCED,
            artifacts=produced,
            metadata=logged or {},
        )
    for name, version in used.items():
        env.store.link_model_version(
            version.id,
            run_id=env.run.id,
            step_run_id=step_run_id,
            role=ModelLinkRole.CONSUMED,
            artifacts={name: inputs[name]},
        )


def is_last_attempt(step: StepIR, attempts: int) -> bool:
    """Whether a step that has made ``attempts`` attempts gets no other (its retries are used up)."""
    return attempts > step.settings.retries


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "stopped"
    from conveyor.secrets import redact

    # The line is stored with the step run and shown by the CLI: no secret value in it.
    text = redact(str(exc)).strip().splitlines()
    if isinstance(exc, ConveyorError):  # its message says what is wrong already
        return text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def finalize_run(env: RunEnvironment, failed_step: str | None = None, *, error: str | None = None) -> str | None:
    """Set the run's status from its step runs, as engines that run steps apart need.

    After a step's final failed attempt (or its engine stopped it), the steps
    downstream of it are recorded as skipped and the run as failed, with
    ``error`` when given. A run settled here runs the hooks then due (the
    pipeline's). Returns the new status, if any.
    """
    pipeline = env.deployment.pipeline
    records = {r.step_id: r for r in env.store.list_step_runs(env.run.id)}
    if failed_step is not None:
        downstream = pipeline.downstream()
        pending = list(downstream[failed_step])
        seen: set[str] = set()
        while pending:
            sid = pending.pop()
            if sid in seen:
                continue
            seen.add(sid)
            pending.extend(downstream[sid])
            if sid not in records:
                try:
                    env.store.record_step_run(
                        env.run.id,
                        sid,
                        status=RunStatus.SKIPPED,
                        step_name=pipeline.step(sid).name,
                        source=pipeline.step(sid).source,
                        code_hash=pipeline.step(sid).code_hash,
                        error=f"upstream step {failed_step!r} failed",
                    )
                except Exception:  # noqa: BLE001 - a concurrent recorder won the race
                    pass
        if error is None:
            cause = records[failed_step].error if failed_step in records else None
            error = f"step {failed_step!r} failed: {cause}" if cause else f"step {failed_step!r} failed"
        settle_run(env.store, env.deployment, env.run.id, RunStatus.FAILED, error=error, stack=env.stack)
        return RunStatus.FAILED
    if len(records) == len(pipeline.steps) and all(r.status in RunStatus.SUCCEEDED for r in records.values()):
        settle_run(env.store, env.deployment, env.run.id, RunStatus.COMPLETED, stack=env.stack)
        return RunStatus.COMPLETED
    return None
