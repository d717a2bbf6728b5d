"""Running hooks: once per step failure or success, once when a run settles, whoever supervises.

A step's failure hooks run after its last attempt, from the first process
that knows it failed for good: the step's own process when the step raised,
else the process that supervises it (the local orchestrator, when the step's
process was killed or timed out), else the engine's finish path
(``finish-run``, the Prefect flow driver). Each hook is claimed in the
metadata store before it runs (:meth:`MetadataStore.claim_hook_invocation`),
so two supervisors never both run it; every invocation is recorded with its
outcome, and a hook that raises changes no step's or run's status.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.stores import RunStatus

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.stack import Stack
    from conveyor.stores import MetadataStore, RunRecord

SUCCESS = "success"
FAILURE = "failure"


@dataclass(frozen=True)
class HookContext:
    """What a hook is told: which pipeline, run and step, what happened and why.

    Attributes:
        event: ``"failure"`` or ``"success"``.
        pipeline_name: the pipeline's name.
        run_id: the run's id; None when the run failed before it was created
            (a run config that is not valid, an image that does not build).
        run_name: the run's name (None as ``run_id``).
        step_id: the step's invocation id; None for the pipeline's own hooks.
        step_name: the step's name (None as ``step_id``).
        status: the step's or run's final status (``completed``, ``failed``).
        error: why it failed, one line (the exception's type and text); None on success.
        run_url: where a person can look at the run, when a server shows runs.
    """

    event: str
    pipeline_name: str
    run_id: str | None
    run_name: str | None
    step_id: str | None
    step_name: str | None
    status: str
    error: str | None = None
    run_url: str | None = None
    stack: Any = field(default=None, repr=False, compare=False)

    @property
    def alerter(self) -> Any:
        """The alerter of the run's stack.

        Raises:
            StackError: the stack has no alerter (or no stack was chosen yet).
        """
        from conveyor.stack import ComponentType

        if self.stack is None:
            from conveyor.exceptions import StackError

            raise StackError(f"pipeline {self.pipeline_name!r} failed before its stack was known: it has no alerter")
        return self.stack.component(ComponentType.ALERTER)

    @property
    def message(self) -> str:
        """One readable line (and the run's URL, if any) saying what happened: what alerters post."""
        where = f"run {self.run_name!r} of pipeline {self.pipeline_name!r}"
        if self.step_id is not None:
            verb = "failed" if self.event == FAILURE else "completed"
            text = f"Step {self.step_id!r} {verb} in {where}"
        elif self.run_name is None:
            text = f"Pipeline {self.pipeline_name!r} failed before its run started"
        else:
            text = f"Run {self.run_name!r} of pipeline {self.pipeline_name!r} {self.status}"
        if self.error:
            text += f": {self.error}"
        if self.run_url:
            text += f"\n{self.run_url}"
        return text

    def details(self) -> dict[str, Any]:
        """The facts as plain data (what the webhook alerter sends beside the message)."""
        return {
            "event": self.event,
            "pipeline": self.pipeline_name,
            "run": self.run_name,
            "run_id": self.run_id,
            "step": self.step_id,
            "status": self.status,
            "error": self.error,
            "run_url": self.run_url,
        }


def run_hooks(store: MetadataStore, sources: Sequence[str], context: HookContext) -> None:
    """Run hooks in order, each claimed in the store first and recorded with its outcome.

    A hook already claimed (by another supervisor) is left out. A hook that
    raises is recorded failed and reported on stderr in one line; the rest
    still run, and nothing else changes.
    """
    from conveyor.dsl import call_hook, load_hook

    owner = f"step {context.step_id!r}" if context.step_id is not None else f"pipeline {context.pipeline_name!r}"
    for position, source in enumerate(sources):
        try:
            claim = store.claim_hook_invocation(
                context.pipeline_name, context.run_id, context.step_id, context.event, position, source
            )
        except Exception as exc:  # noqa: BLE001 - a store that cannot record runs no hook twice: it runs none
            print(f"conveyor: {context.event} hook {source} of {owner} not run: {_line(exc)}", file=sys.stderr)
            continue
        if claim is None:
            continue
        error: str | None = None
        try:
            call_hook(load_hook(source, where=owner), context)
        except Exception as exc:  # noqa: BLE001 - a hook never changes the status of what it watches
            error = _line(exc)
            print(f"conveyor: {context.event} hook {source} of {owner} failed: {error}", file=sys.stderr)
        except BaseException as exc:  # Ctrl-C or SystemExit inside a hook: recorded, then passed on
            store.finish_hook_invocation(claim, "failed", error=_line(exc) or type(exc).__name__)
            raise
        try:
            store.finish_hook_invocation(claim, "failed" if error else "completed", error=error)
        except Exception as exc:  # noqa: BLE001 - the hook ran; only its record is missing
            print(f"conveyor: could not record {context.event} hook {source}: {_line(exc)}", file=sys.stderr)


def _line(exc: BaseException) -> str:
    from conveyor.exceptions import ConveyorError
    from conveyor.secrets import redact

    text = redact(str(exc)).strip().splitlines()
    if isinstance(exc, ConveyorError):
        return text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _stack(deployment: Deployment, stack: Stack | None) -> Stack:
    if stack is not None:
        return stack
    from conveyor.stack import Stack

    return Stack(deployment.stack)


def run_step_hooks(
    store: MetadataStore,
    deployment: Deployment,
    run: RunRecord,
    step_id: str,
    event: str,
    *,
    error: str | None = None,
    stack: Stack | None = None,
) -> None:
    """Run a step's ``on_success`` or ``on_failure`` hooks (each at most once per run)."""
    step = deployment.pipeline.step(step_id)
    sources = step.settings.on_failure if event == FAILURE else step.settings.on_success
    if not sources:
        return
    context = HookContext(
        event=event,
        pipeline_name=deployment.pipeline.name,
        run_id=run.id,
        run_name=run.name,
        step_id=step.id,
        step_name=step.name,
        status=RunStatus.FAILED if event == FAILURE else RunStatus.COMPLETED,
        error=error,
        run_url=store.run_url(run.id),
        stack=_stack(deployment, stack),
    )
    run_hooks(store, sources, context)


def run_pipeline_hooks(
    store: MetadataStore,
    deployment: Deployment,
    run: RunRecord,
    event: str,
    *,
    stack: Stack | None = None,
) -> None:
    """Run the pipeline's ``on_success`` or ``on_failure`` hooks once for a settled run."""
    settings = deployment.pipeline.settings
    sources = settings.on_failure if event == FAILURE else settings.on_success
    if not sources:
        return
    context = HookContext(
        event=event,
        pipeline_name=deployment.pipeline.name,
        run_id=run.id,
        run_name=run.name,
        step_id=None,
        step_name=None,
        status=run.status,
        error=run.error if event == FAILURE else None,
        run_url=store.run_url(run.id),
        stack=_stack(deployment, stack),
    )
    run_hooks(store, sources, context)


def run_launch_failure_hooks(
    store: MetadataStore, pipeline_name: str, sources: Sequence[str], error: str, *, stack: Stack | None = None
) -> None:
    """Run a pipeline's failure hooks for a run that failed before it was created.

    The context has no run and no step (``run_id``, ``run_name``, ``step_id``
    are None); ``error`` says what failed (a run config that is not valid, an
    image that does not build), and ``alerter`` is the chosen stack's.
    """
    if not sources:
        return
    context = HookContext(
        event=FAILURE,
        pipeline_name=pipeline_name,
        run_id=None,
        run_name=None,
        step_id=None,
        step_name=None,
        status=RunStatus.FAILED,
        error=error,
        stack=stack,
    )
    run_hooks(store, sources, context)


def has_hooks(deployment: Deployment) -> bool:
    """Whether the pipeline or any of its steps has a hook."""
    settings = deployment.pipeline.settings
    if settings.on_success or settings.on_failure:
        return True
    return any(s.settings.on_success or s.settings.on_failure for s in deployment.pipeline.steps)


def run_due_hooks(store: MetadataStore, deployment: Deployment, run_id: str, *, stack: Stack | None = None) -> None:
    """Run every hook a settled run still owes: failure hooks of its failed steps, then the pipeline's.

    Whoever settles a run calls this; hooks that another process ran (or is
    running) already are claimed, so nothing runs twice. A run that is still
    running or was stopped owes nothing.
    """
    if not has_hooks(deployment):
        return
    run = store.get_run(run_id)
    if run.status not in (RunStatus.COMPLETED, RunStatus.FAILED):
        return
    stack = _stack(deployment, stack)
    failing = [s for s in deployment.pipeline.steps if s.settings.on_failure]
    if failing:
        records = {r.step_id: r for r in store.list_step_runs(run.id)}
        for step in failing:
            record = records.get(step.id)
            if record is not None and record.status == RunStatus.FAILED:
                run_step_hooks(store, deployment, run, step.id, FAILURE, error=record.error, stack=stack)
    event = SUCCESS if run.status == RunStatus.COMPLETED else FAILURE
    run_pipeline_hooks(store, deployment, run, event, stack=stack)


def settle_run(
    store: MetadataStore,
    deployment: Deployment,
    run_id: str,
    status: str,
    *,
    error: str | None = None,
    running_steps: str | None = None,
    stack: Stack | None = None,
) -> bool:
    """Give a run its final status and run the hooks that are then due (see :func:`run_due_hooks`).

    What every orchestrator calls when it settles a run, so that the
    pipeline's hooks run once whichever process settles it.

    Returns:
        True when this call settled the run; False when it was settled already.
    """
    settled = store.settle_run(run_id, status, error=error, running_steps=running_steps)
    run_due_hooks(store, deployment, run_id, stack=stack)
    return settled
