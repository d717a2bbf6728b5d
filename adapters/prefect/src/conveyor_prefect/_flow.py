"""The Prefect flow that runs a stored conveyor deployment, one Prefect task per step.

:func:`run_deployment` is both what ``python run.py`` runs in its own process
(against the stack's Prefect API) and the entrypoint of every Prefect
deployment a schedule creates: it needs only the deployment id, so a Prefect
worker loads it without any of the user's code at parse time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TagsContext
from prefect.futures import wait as wait_futures
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from conveyor.constants import ENV_SOURCE_ROOT, ENV_STORE_URL
from conveyor.exceptions import ConfigError, RunStoppedError, StepFailedError
from conveyor.stores import RunStatus
from conveyor_prefect._compile import RUN_TAG_PREFIX, FlowSpec, TaskSpec, compile_flow, literal_run_name

if TYPE_CHECKING:
    from prefect.futures import PrefectFuture

    from conveyor.runtime import RunEnvironment
    from conveyor.stores import StepRunRecord

_STOP_GRACE = 10.0
"""Seconds a step process gets between SIGTERM and SIGKILL."""


@dataclass
class LocalLaunch:
    """A run that ``PrefectOrchestrator.run`` started in this process, handed to its flow."""

    env: RunEnvironment
    source_root: Path | None


# Runs started by this process, by conveyor run id: the flow reuses their open
# stores and stack instead of opening them again.
_launches: dict[str, LocalLaunch] = {}
# Flow drivers of this process, by conveyor run id, for the task function.
_drivers: dict[str, FlowDriver] = {}


def register_launch(launch: LocalLaunch) -> None:
    """Hand a run created in this process to the flow that will drive it."""
    _launches[launch.env.run.id] = launch


def unregister_launch(run_id: str) -> None:
    """Forget a run handed over with :func:`register_launch`."""
    _launches.pop(run_id, None)


@flow(name="conveyor-pipeline", persist_result=False, log_prints=False)
def run_deployment(
    deployment_id: str,
    parameters: dict[str, Any] | None = None,
    conveyor_run_id: str | None = None,
    image: str | None = None,
) -> Any:
    """Run a stored conveyor deployment as this Prefect flow run.

    Args:
        deployment_id: id of the deployment in the conveyor metadata store
            (``CONVEYOR_STORE_URL``, else the repository of the working folder).
        parameters: pipeline parameters to override (JSON values).
        conveyor_run_id: join this existing conveyor run; default: the run keyed
            ``prefect:<flow run id>``, created on first use.
        image: the image this flow run runs in (deployments of a docker work
            pool): recorded with its steps and part of their cache keys.

    Returns a Failed state when a step failed and a Cancelled state when the
    flow run was cancelled in Prefect; the conveyor run records the same.
    """
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    flow_run_id = str(ctx.flow_run.id)
    launch = _launches.get(conveyor_run_id) if conveyor_run_id else None
    if launch is None:
        launch = _launch_from_environment(deployment_id, parameters or {}, conveyor_run_id, flow_run_id, image)
    env = launch.env
    env.store.update_run(env.run.id, orchestrator_run_id=flow_run_id)
    tag = f"{RUN_TAG_PREFIX}{env.run.id}"
    if tag not in (ctx.flow_run.tags or []):
        try:
            ctx.client.update_flow_run(ctx.flow_run.id, tags=[*(ctx.flow_run.tags or []), tag])
        except Exception:
            pass
    from conveyor.stack import ComponentType
    from conveyor_prefect._flavor import PrefectOrchestratorConfig

    spec_ir = env.deployment.stack.get(ComponentType.ORCHESTRATOR)
    config = PrefectOrchestratorConfig.model_validate(dict(spec_ir.config) if spec_ir is not None else {})
    spec = compile_flow(env.deployment.model_copy(update={"schedule": None}), config)
    driver = FlowDriver(env, spec, launch.source_root, ctx.client, ctx.flow_run.id, config.cancel_poll_interval)
    return driver.run()


def _launch_from_environment(
    deployment_id: str, overrides: dict[str, Any], run_id: str | None, flow_run_id: str, image: str | None
) -> LocalLaunch:
    # The worker side: everything comes from the store the environment names.
    from conveyor.client import Client
    from conveyor.ir import load_deployment
    from conveyor.runtime import RunEnvironment, start_run
    from conveyor.stack import Stack
    from conveyor.stores import open_store

    root = os.environ.get(ENV_SOURCE_ROOT) or os.getcwd()
    if root not in sys.path:
        sys.path.insert(0, root)
    url = os.environ.get(ENV_STORE_URL)
    store = open_store(url) if url else Client().store
    deployment = load_deployment(store.get_deployment_json(deployment_id))
    unknown = set(overrides) - set(deployment.pipeline.parameters)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]!r} is not a parameter of pipeline {deployment.pipeline.name!r}")
    stack = Stack(deployment.stack)
    if run_id is not None:
        run = store.get_run(run_id)
    else:
        # In a container (a docker work pool) this process's PID means nothing to
        # the machine's other processes, so the run is recorded without one.
        run = start_run(
            store,
            deployment,
            run_key=f"prefect:{flow_run_id}",
            owned=image is None,
            parameters=overrides,
            orchestrator_run_id=flow_run_id,
        )
    # A worker's runner key (conveyor server) is good for joining runs only: go on with the run's own token.
    store.scope_to_run(run.id)
    env = RunEnvironment(store=store, stack=stack, deployment=deployment, run=run, overrides=overrides, image=image)
    return LocalLaunch(env=env, source_root=Path(root))


def pipeline_flow(spec: FlowSpec, run_name: str | None = None) -> Any:
    """:func:`run_deployment` as the flow of a compiled pipeline, named after it; its flow runs are named
    ``run_name`` when given. Deployed, a worker imports it by the same name (see :mod:`conveyor_prefect._named`)."""
    from conveyor_prefect._named import named_flow

    if run_name is None:
        return named_flow(spec.flow_name)
    return named_flow(spec.flow_name, flow_run_name=literal_run_name(run_name))


# Making a Prefect task costs milliseconds (it hashes the function's source):
# one per distinct task spec is enough.
_prefect_tasks: dict[TaskSpec, Any] = {}


def _prefect_task(spec: TaskSpec) -> Any:
    found = _prefect_tasks.get(spec)
    if found is None:
        found = _prefect_tasks[spec] = task(
            _run_step,
            name=spec.name,
            task_run_name=literal_run_name(spec.step_id),
            retries=spec.retries,
            retry_delay_seconds=spec.retry_delay_seconds,
            timeout_seconds=spec.timeout_seconds,
            tags=list(spec.tags) or None,
            cache_policy=NO_CACHE,
            persist_result=False,
        )
    return found


def _run_step(conveyor_run_id: str, step_id: str) -> str:
    """The body of every Prefect task: run one step of the run's pipeline."""
    driver = _drivers.get(conveyor_run_id)
    if driver is None:
        raise RuntimeError(
            f"conveyor run {conveyor_run_id} has no flow driver in this process; "
            "conveyor steps run in the flow's own process (thread task runner)"
        )
    return driver.run_step(step_id)


class FlowDriver:
    """Submits one Prefect task per step, waits for them, and records how the run ended.

    Args:
        env: the run environment (store, stack, deployment, run).
        spec: the compiled flow.
        source_root: folder step processes import the user's code from.
        client: the flow run's synchronous Prefect client.
        flow_run_id: the flow run being driven.
        poll_interval: seconds between checks for a cancellation in Prefect.
    """

    def __init__(
        self,
        env: RunEnvironment,
        spec: FlowSpec,
        source_root: Path | None,
        client: Any,
        flow_run_id: Any,
        poll_interval: float,
    ) -> None:
        self.env = env
        self.spec = spec
        self.source_root = source_root
        self.client = client
        self.flow_run_id = flow_run_id
        self.poll_interval = poll_interval
        self.tasks: dict[str, TaskSpec] = {t.step_id: t for t in spec.tasks}
        self.stopping = threading.Event()
        self.stop_reason = ""
        self._procs: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- the whole run ---------------------------------------------------------------
    def run(self) -> Any:
        """Run every step; returns None, or the Failed/Cancelled state the flow run ends in."""
        run_id = self.env.run.id
        futures: dict[str, PrefectFuture[Any]] = {}
        _drivers[run_id] = self
        try:
            # Tasks carry only their own tags: Prefect asks its API for a
            # concurrency slot for every tag a task run has, flow tags included.
            with ThreadPoolTaskRunner(max_workers=self.spec.max_workers) as runner, TagsContext(current_tags=set()):
                for t in self.spec.tasks:
                    futures[t.step_id] = runner.submit(
                        _prefect_task(t),
                        {"conveyor_run_id": run_id, "step_id": t.step_id},
                        wait_for=[futures[u] for u in t.upstream],
                    )
                if self._wait(list(futures.values())):
                    self.stop(f"flow run {self.flow_run_id} was cancelled in Prefect")
        except BaseException as exc:  # Ctrl-C, or the worker's SIGTERM when Prefect cancels
            self.stop(f"stopped ({type(exc).__name__})")
            self._close_stopped()
            raise
        finally:
            _drivers.pop(run_id, None)
        return self._finish(futures)

    def _wait(self, pending: list[PrefectFuture[Any]]) -> bool:
        """Wait for every task; True when the flow run was cancelled in Prefect first."""
        while pending:
            _, not_done = wait_futures(pending, timeout=self.poll_interval)
            pending = list(not_done)
            if pending and self._cancel_requested():
                return True
        return False

    def _cancel_requested(self) -> bool:
        try:
            state = self.client.read_flow_run(self.flow_run_id).state
        except Exception:
            return False
        return state is not None and (state.is_cancelling() or state.is_cancelled())

    def stop(self, reason: str) -> None:
        """Start no more steps, end step processes, and record running steps as stopped."""
        if self.stopping.is_set():
            return
        self.stop_reason = reason
        self.stopping.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _terminate(proc)
        for proc in procs:
            _reap(proc)
        for record in self.env.store.list_step_runs(self.env.run.id):
            if record.status == RunStatus.RUNNING:
                self.env.store.finish_step_run(record.id, RunStatus.STOPPED, error=reason)

    def _close_stopped(self) -> None:
        self.env.store.settle_run(self.env.run.id, RunStatus.STOPPED, error=self.stop_reason)

    def _finish(self, futures: dict[str, PrefectFuture[Any]]) -> Any:
        store, run = self.env.store, self.env.run
        if self.stopping.is_set():
            # Steps that were mid-way in this process's threads may have ended since.
            for record in store.list_step_runs(run.id):
                if record.status == RunStatus.RUNNING:
                    store.finish_step_run(record.id, RunStatus.STOPPED, error=self.stop_reason)
            self._close_stopped()
            return Cancelled(message=f"conveyor run {run.name} stopped: {self.stop_reason}")
        records = {r.step_id: r for r in store.list_step_runs(run.id)}
        pipeline = self.env.deployment.pipeline
        failures: dict[str, str] = {}
        for step in pipeline.steps:
            record = records.get(step.id)
            if record is not None:
                if record.status == RunStatus.RUNNING:  # its task ended without closing it
                    message = (
                        _state_message(futures[step.id], self.tasks[step.id]) or "its Prefect task ended while it ran"
                    )
                    store.finish_step_run(record.id, RunStatus.FAILED, error=message)
                    failures[step.id] = message
                elif record.status in (RunStatus.FAILED, RunStatus.STOPPED):
                    failures[step.id] = record.error or record.status
                continue
            cause = next((u for u in _ancestors(step.id, pipeline) if u in failures), None)
            if cause is not None:
                store.record_step_run(
                    run.id,
                    step.id,
                    status=RunStatus.SKIPPED,
                    step_name=step.name,
                    source=step.source,
                    code_hash=step.code_hash,
                    error=f"upstream step {cause!r} failed",
                )
            else:
                message = (
                    _state_message(futures[step.id], self.tasks[step.id])
                    or "its Prefect task ended before the step ran"
                )
                store.record_step_run(
                    run.id,
                    step.id,
                    status=RunStatus.FAILED,
                    step_name=step.name,
                    source=step.source,
                    code_hash=step.code_hash,
                    error=message,
                )
                failures[step.id] = message
        # Settling runs the hooks then due: failure hooks of steps whose own process could not run
        # them (killed, timed out), and the pipeline's.
        from conveyor.runtime import settle_run

        deployment, stack = self.env.deployment, self.env.stack
        if failures:
            first = next(iter(failures))
            message = f"step {first!r} failed: {failures[first]}"
            settle_run(store, deployment, run.id, RunStatus.FAILED, error=message, stack=stack)
            return Failed(message=message)
        settle_run(store, deployment, run.id, RunStatus.COMPLETED, stack=stack)
        return None

    # -- one step --------------------------------------------------------------------
    def run_step(self, step_id: str) -> str:
        """Run one step the way its task spec says; returns its final status.

        Raises:
            StepFailedError: the step failed (Prefect may retry the task).
            RunStoppedError: the run was stopped before the step started.
        """
        if self.stopping.is_set():
            raise RunStoppedError(f"step {step_id!r} not started: {self.stop_reason}")
        mode = self.tasks[step_id].mode
        if mode == "in_process":
            from conveyor.runtime import execute_step

            return execute_step(self.env, step_id).status
        if mode == "step_operator":
            from conveyor.stack import ComponentType

            self.env.stack.component(ComponentType.STEP_OPERATOR).run_step(self.env, step_id)
        else:
            self._run_process(step_id, mode)
        record = self._record(step_id)
        return record.status if record is not None else RunStatus.COMPLETED

    def _command(self, step_id: str) -> list[str]:
        from conveyor.ir import canonical_json
        from conveyor.runtime import step_command

        return step_command(
            self.env.deployment.id,
            step_id,
            run_id=self.env.run.id,
            # This flow itself may run in the pipeline's image (a docker work pool).
            image=self.env.image,
            params={name: canonical_json(value) for name, value in self.env.overrides.items()},
            python=sys.executable,
        )

    def _start(self, step_id: str, mode: str) -> Any:
        """Start a step process, or a step container (something with ``Popen``'s poll/wait/send_signal/kill)."""
        if mode == "container":
            from conveyor.exceptions import StackError
            from conveyor_prefect._container import ContainerStep

            image = self.env.deployment.image_for(step_id)
            if image is None:
                raise StackError(
                    f"the deployment has no image for step {step_id!r}",
                    "the stack needs an image-builder and a container-registry for step_mode: container",
                )
            return ContainerStep(self.env, step_id, image, stop_timeout=_STOP_GRACE)
        from conveyor.orchestrators import step_process_env

        step = self.env.deployment.pipeline.step(step_id)
        env = step_process_env(
            self.env.store, self.source_root, dict(step.settings.environment), run_id=self.env.run.id
        )
        cwd = str(self.source_root) if self.source_root else None
        return subprocess.Popen(self._command(step_id), env=env, cwd=cwd)

    def _run_process(self, step_id: str, mode: str) -> None:
        step = self.env.deployment.pipeline.step(step_id)
        proc = self._start(step_id, mode)
        with self._lock:
            self._procs[step_id] = proc
        if self.stopping.is_set():  # stop() ran while this step was starting
            _terminate(proc)
        timeout = step.settings.timeout
        started = time.monotonic()
        try:
            while True:
                try:
                    code = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if timeout is not None and time.monotonic() - started > timeout:
                        raise TimeoutError(f"step {step_id!r} timed out after {timeout:g} s") from None
        except BaseException as exc:  # a timeout (ours or Prefect's), a cancellation, Ctrl-C
            _terminate(proc)
            _reap(proc)
            # Prefect stops a task at its timeout by raising its CancelledError in this thread.
            timed_out = (
                timeout is not None
                and not self.stopping.is_set()
                and (
                    time.monotonic() - started >= timeout * 0.95
                    or type(exc).__name__ in ("CancelledError", "TimeoutError")
                )
            )
            reason = (
                f"timed out after {timeout:g} s" if timed_out else self.stop_reason or f"stopped ({type(exc).__name__})"
            )
            self._close_record(step_id, RunStatus.FAILED if timed_out else RunStatus.STOPPED, reason)
            raise
        finally:
            with self._lock:
                self._procs.pop(step_id, None)
        if self.stopping.is_set():
            raise RunStoppedError(f"step {step_id!r}: {self.stop_reason}")
        error = getattr(proc, "error", None)
        if error is not None:  # the step container recorded the failure, or could not start
            raise error
        if code != 0:
            record = self._record(step_id)
            how = "was killed" if code < 0 else f"exited with code {code}"
            reason = record.error if record is not None and record.error else f"its process {how}"
            self._close_record(step_id, RunStatus.FAILED, reason)
            raise StepFailedError(f"step {step_id!r} failed: {reason}")

    def _record(self, step_id: str) -> StepRunRecord | None:
        found = [r for r in self.env.store.list_step_runs(self.env.run.id) if r.step_id == step_id]
        return found[-1] if found else None

    def _close_record(self, step_id: str, status: str, reason: str) -> None:
        record = self._record(step_id)
        # A step process records itself stopped on SIGTERM; a timeout is still a failure.
        closable = (RunStatus.RUNNING, RunStatus.STOPPED) if status == RunStatus.FAILED else (RunStatus.RUNNING,)
        if record is not None and record.status in closable:
            self.env.store.finish_step_run(record.id, status, error=reason)


def _terminate(proc: Any) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except (OSError, ValueError):
            pass


def _reap(proc: Any) -> None:
    try:
        proc.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _state_message(future: PrefectFuture[Any], spec: TaskSpec) -> str | None:
    state = future.state
    if state is None or state.is_completed():
        return None
    if state.name == "TimedOut" and spec.timeout_seconds is not None:
        return f"timed out after {spec.timeout_seconds:g} s"
    return f"Prefect task run ended {state.name}" + (f": {state.message}" if state.message else "")


def _ancestors(step_id: str, pipeline: Any) -> list[str]:
    out: list[str] = []
    pending = list(pipeline.step(step_id).upstream())
    while pending:
        sid = pending.pop()
        if sid not in out:
            out.append(sid)
            pending.extend(pipeline.step(sid).upstream())
    return out
