"""From a pipeline call to a run: trace, check, build the deployment, hand it to the stack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.dsl import runtime_type
from conveyor.materializers import registry

if TYPE_CHECKING:
    from conveyor.client import PipelineRunView
    from conveyor.dsl import Pipeline
    from conveyor.ir import Deployment, PipelineIR
    from conveyor.orchestrators import DeployedPipeline, LaunchContext
    from conveyor.stack import Stack
    from conveyor.stores import MetadataStore


def check_materializers(pipeline: Pipeline, ir: PipelineIR) -> None:
    """Fail before any step runs when a declared output type has no materializer."""
    for step in ir.steps:
        for output, spec in step.outputs.items():
            if spec.materializer is not None:
                continue
            tp = _output_type(step.source, output)
            if tp is not Any and isinstance(tp, type):
                registry.get(tp, where=f"output {output!r} of step {step.id!r}")


_step_cache: dict[str, Any] = {}


def _output_type(source: str, output: str) -> Any:
    from conveyor._source import load_source

    step = _step_cache.get(source)
    if step is None:
        step = _step_cache[source] = load_source(source)
    return runtime_type(step.output_types[output])


def check_model_references(store: MetadataStore, ir: PipelineIR) -> None:
    """Fail before any step runs when a model version the pipeline loads or attaches to is not there.

    The steps resolve their references again when they run (an alias may move in between).
    """
    from conveyor.ir import ModelInput
    from conveyor.runtime import check_models

    annotations = {}
    for step in ir.steps:
        for name, inp in step.inputs.items():
            if isinstance(inp, ModelInput):
                annotations[(step.id, name)] = _input_type(step.source, name)
    check_models(store, ir, annotations)


def _input_type(source: str, name: str) -> Any:
    from conveyor._source import load_source

    step = _step_cache.get(source)
    if step is None:
        step = _step_cache[source] = load_source(source)
    return step.input_types.get(name)


def build_deployment(pipeline: Pipeline, ir: PipelineIR, stack: Stack) -> Deployment:
    """The deployment of a traced pipeline on a stack (schedule and run name from its run config)."""
    from conveyor.exceptions import config_error
    from conveyor.ir import Deployment

    config = pipeline.run_config
    try:
        return Deployment(
            pipeline=ir,
            stack=stack.ir,
            schedule=config.schedule if config is not None else None,
            run_name=config.run_name if config is not None else None,
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise config_error(exc, f"pipeline {pipeline.name!r}") from None


def launch(pipeline: Pipeline, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PipelineRunView | DeployedPipeline:
    """Trace ``pipeline(*args, **kwargs)`` and run it on its stack; returns the run.

    Returns a :class:`~conveyor.orchestrators.DeployedPipeline` when the stack's
    engine runs it later (a written DAG file, a schedule) rather than now.
    """
    from conveyor._repository import Repository
    from conveyor.client import Client
    from conveyor.orchestrators import LaunchContext

    repo = Repository.current()
    store = repo.store()
    stack: Stack | None = None
    deployment: Deployment | None = None
    ctx: LaunchContext | None = None
    try:
        stack = repo.stack(pipeline.stack)
        ir = pipeline.trace(*args, **kwargs)
        check_materializers(pipeline, ir)
        deployment = build_deployment(pipeline, ir, stack)
        if deployment.schedule is None:
            check_model_references(store, ir)
        source_root = pipeline.source_root() or Path.cwd()
        ctx = LaunchContext(store=store, stack=stack, source_root=source_root, home=repo.dir)
        run_id = stack.orchestrator.run(deployment, ctx)
    except KeyboardInterrupt:
        _stopped(pipeline.name)
        raise
    except Exception as exc:
        _failed_launch(pipeline, store, stack, deployment, ctx, exc)
        raise
    return Client(repo).get_run(run_id) if isinstance(run_id, str) else run_id


def _failed_launch(
    pipeline: Pipeline,
    store: MetadataStore,
    stack: Stack | None,
    deployment: Deployment | None,
    ctx: LaunchContext | None,
    exc: BaseException,
) -> None:
    """The pipeline's failure hooks, for a launch that raised.

    When no run was created (a run config that is not valid, an image that
    does not build, a run name that is taken) they run here, with a context
    that has no run. A run this process drives and left running is settled
    failed; hooks that the run's settling ran already are not run again.
    """
    import os
    import socket

    from conveyor.exceptions import ConveyorError
    from conveyor.runtime import run_due_hooks, run_launch_failure_hooks, settle_run
    from conveyor.secrets import redact
    from conveyor.stores import RunStatus

    lines = redact(exc.message if isinstance(exc, ConveyorError) else str(exc)).strip().splitlines()
    error = lines[0] if lines else type(exc).__name__
    if not isinstance(exc, ConveyorError):
        error = f"{type(exc).__name__}: {error}"
    try:
        if ctx is not None and ctx.run_ids and deployment is not None:
            for run_id in ctx.run_ids:
                run = store.get_run(run_id)
                mine = run.pid == os.getpid() and run.host == socket.gethostname()
                if run.status == RunStatus.RUNNING and mine:
                    settle_run(
                        store,
                        deployment,
                        run_id,
                        RunStatus.FAILED,
                        error=error,
                        running_steps=RunStatus.FAILED,
                        stack=stack,
                    )
                else:
                    run_due_hooks(store, deployment, run_id, stack=stack)
            return
        sources = (
            deployment.pipeline.settings.on_failure if deployment is not None else pipeline.hook_sources("failure")
        )
        run_launch_failure_hooks(store, pipeline.name, sources, error, stack=stack)
    except Exception as hook_error:  # noqa: BLE001 - the launch's own error is the one to report
        import sys

        print(f"conveyor: the failure hooks of pipeline {pipeline.name!r} did not run: {hook_error}", file=sys.stderr)


def _stopped(pipeline: str) -> None:
    """One line for a run stopped by Ctrl-C or SIGTERM; a script then ends quietly (exit code 130).

    An interactive session (a notebook, a REPL) gets its KeyboardInterrupt back instead.
    """
    import sys
    import threading

    print(f"conveyor: stopped pipeline {pipeline!r}; its run is recorded as stopped", file=sys.stderr)
    interactive = hasattr(sys, "ps1") or "IPython" in sys.modules or sys.flags.interactive
    if not interactive and threading.current_thread() is threading.main_thread():
        raise SystemExit(130) from None


def load_pipeline_ref(ref: str) -> Pipeline | PipelineIR:
    """A pipeline from ``path/to/file.py:name``, ``module:name``, or the name of a pipeline that ran before.

    A bare name gives the IR of that pipeline's latest deployment (with its
    parameters), so exporting needs none of the pipeline's code.
    """
    import importlib.util
    import sys

    from conveyor._source import load_source
    from conveyor.dsl import Pipeline
    from conveyor.exceptions import ConfigError

    if ":" in ref:
        target, _, attr = ref.rpartition(":")
        if target.endswith(".py"):
            path = Path(target).resolve()
            if not path.is_file():
                raise ConfigError(f"no file {target}", "give path/to/file.py:pipeline_name")
            sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            obj = getattr(module, attr, None)
        else:
            obj = load_source(ref)
        if not isinstance(obj, Pipeline):
            raise ConfigError(f"{ref!r} is not a @pipeline")
        return obj
    from conveyor._repository import Repository
    from conveyor.ir import load_deployment

    store = Repository.existing().store()
    deployment_id = store.latest_deployment_id(store.get_pipeline(ref).id)
    if deployment_id is None:
        raise ConfigError(
            f"pipeline {ref!r} was never run or deployed here", "give its source instead: path/to/file.py:name"
        )
    return load_deployment(store.get_deployment_json(deployment_id)).pipeline


def deployment_for(
    ref: str | Pipeline,
    *,
    stack: str | None = None,
    parameters: dict[str, Any] | None = None,
    schedule: Any = None,
    config_path: str | Path | None = None,
) -> tuple[Deployment, Stack, Path | None]:
    """Trace (or look up) a pipeline and make its deployment for a stack.

    ``config_path`` is a YAML run config, as for running: its parameters,
    step settings, schedule and run name go into the deployment.
    """
    from conveyor._repository import Repository
    from conveyor.dsl import Pipeline
    from conveyor.exceptions import ConfigError
    from conveyor.ir import Deployment

    repo = Repository.existing()  # the stack must be registered already: nothing to create
    target = load_pipeline_ref(ref) if isinstance(ref, str) else ref
    if config_path is not None:
        if not isinstance(target, Pipeline):
            target = _pipeline_of(target, str(ref))
        target = target.with_options(config_path=config_path)
    stack_obj = repo.stack(stack)
    if isinstance(target, Pipeline):
        ir = target.trace(**(parameters or {}))
        check_materializers(target, ir)
        deployment = build_deployment(target, ir, stack_obj)
        source_root = target.source_root()
    else:
        if parameters:
            unknown = set(parameters) - set(target.parameters)
            if unknown:
                raise ConfigError(f"pipeline {target.name!r} has no parameter {sorted(unknown)[0]!r}")
            raise ConfigError("parameters of a pipeline given by name cannot change", "give its source: file.py:name")
        deployment = Deployment(pipeline=target, stack=stack_obj.ir)
        source_root = None
    if schedule is not None:
        deployment = deployment.model_copy(update={"schedule": schedule})
    return deployment, stack_obj, source_root


def _pipeline_of(ir: PipelineIR, ref: str) -> Pipeline:
    """The code of a pipeline known by name, imported again from the module it ran from."""
    from conveyor._source import load_source
    from conveyor.dsl import Pipeline
    from conveyor.exceptions import ConfigError, DefinitionError

    hint = "give it as path/to/file.py:name"
    if ir.source is None:
        raise ConfigError(f"pipeline {ref!r} has no recorded source to apply a run config to", hint)
    try:
        obj = load_source(ir.source)
    except DefinitionError as exc:
        raise ConfigError(f"pipeline {ref!r}: {exc.message}", hint) from None
    if not isinstance(obj, Pipeline):
        raise ConfigError(f"{ir.source} is no longer a @pipeline", hint)
    return obj


def export_pipeline(
    ref: str | Pipeline,
    output: str | Path,
    *,
    stack: str | None = None,
    parameters: dict[str, Any] | None = None,
    schedule: Any = None,
    config_path: str | Path | None = None,
) -> list[Path]:
    """Compile a pipeline for a stack's orchestrator and write the result under ``output``.

    ``config_path`` is a YAML run config, as for running the pipeline.
    """
    from conveyor._repository import Repository
    from conveyor.orchestrators import LaunchContext

    deployment, stack_obj, source_root = deployment_for(
        ref, stack=stack, parameters=parameters, schedule=schedule, config_path=config_path
    )
    repo = Repository.existing()
    ctx = LaunchContext(store=repo.store(), stack=stack_obj, source_root=source_root or Path.cwd(), home=repo.dir)
    return stack_obj.orchestrator.export(deployment, ctx, Path(output))


def deploy_pipeline(
    ref: str | Pipeline,
    *,
    stack: str | None = None,
    parameters: dict[str, Any] | None = None,
    schedule: Any = None,
    config_path: str | Path | None = None,
) -> str | DeployedPipeline:
    """Submit a pipeline to a stack's orchestrator (a scheduled deployment when ``schedule`` is set).

    ``config_path`` is a YAML run config, as for running the pipeline. Returns
    the id of the run it started, or what was deployed where when the engine
    runs it later.
    """
    from conveyor._repository import Repository
    from conveyor.orchestrators import LaunchContext

    deployment, stack_obj, source_root = deployment_for(
        ref, stack=stack, parameters=parameters, schedule=schedule, config_path=config_path
    )
    repo = Repository.existing()
    store = repo.store()
    if deployment.schedule is None:
        check_model_references(store, deployment.pipeline)
    ctx = LaunchContext(store=store, stack=stack_obj, source_root=source_root or Path.cwd(), home=repo.dir)
    return stack_obj.orchestrator.run(deployment, ctx)
