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
    from conveyor.stack import Stack


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


def build_deployment(pipeline: Pipeline, ir: PipelineIR, stack: Stack) -> Deployment:
    """The deployment of a traced pipeline on a stack (schedule and run name from its run config)."""
    from conveyor.ir import Deployment

    config = pipeline.run_config
    return Deployment(
        pipeline=ir,
        stack=stack.ir,
        schedule=config.schedule if config is not None else None,
        run_name=config.run_name if config is not None else None,
    )


def launch(pipeline: Pipeline, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PipelineRunView:
    """Trace ``pipeline(*args, **kwargs)`` and run it on its stack; returns the run."""
    from conveyor._repository import Repository
    from conveyor.client import Client
    from conveyor.orchestrators import LaunchContext

    repo = Repository.current()
    store = repo.store()
    stack = repo.stack(pipeline.stack)
    ir = pipeline.trace(*args, **kwargs)
    check_materializers(pipeline, ir)
    deployment = build_deployment(pipeline, ir, stack)
    source_root = pipeline.source_root() or Path.cwd()
    run_id = stack.orchestrator.run(deployment, LaunchContext(store=store, stack=stack, source_root=source_root))
    return Client(repo).get_run(run_id)
