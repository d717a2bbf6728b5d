"""The local orchestrator: runs steps on this machine, independent ones in parallel.

Steps run in threads of this process (fast) or, with ``mode: process``, each
in a fresh ``python -m conveyor.runtime run-step`` process, the command every
other engine runs. Steps with a timeout, environment variables or a memory
limit always get their own process, since a thread can be neither stopped,
limited nor given its own environment. A memory limit
(``resources.memory``) holds the resident memory of the step's process and
everything it started, read every 0.1 s: going over it kills them all, as a
container's limit would.

:class:`LocalScheduler` is the scheduling (parallel independent steps,
retries, skipping after a failure, Ctrl-C and SIGTERM) that the whole local
family shares; an orchestrator that runs each step elsewhere (a container)
subclasses it, overrides :meth:`LocalScheduler.run_attempt` and
:meth:`LocalScheduler.stop_running`, and names it in
``LocalOrchestrator.scheduler_class``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.constants import ENV_PARENT_PID
from conveyor.exceptions import RunStoppedError, StepFailedError
from conveyor.orchestrators._base import BaseOrchestrator, LaunchContext, step_process_env
from conveyor.orchestrators._progress import Progress
from conveyor.stack import Capability, ComponentType, Flavor
from conveyor.stores import RunStatus, now

if TYPE_CHECKING:
    from conveyor.ir import Deployment, StepIR
    from conveyor.runtime import RunEnvironment


class LocalOrchestratorConfig(BaseModel):
    """Config of the ``local`` orchestrator."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int = Field(default=32, ge=1)
    """How many steps may run at once."""
    mode: Literal["thread", "process"] = "thread"
    """``thread``: steps run in this process; ``process``: each in its own step process."""


class LocalScheduler:
    """Runs one run's steps on this machine: parallel where the graph allows, with retries.

    Args:
        config: the orchestrator's config (``max_workers``, ``mode``).
        env: the run and everything around it.
        ctx: the launch context (store, stack, source root).
    """

    def __init__(self, config: Any, env: RunEnvironment, ctx: LaunchContext) -> None:
        self.config = config
        self.env = env
        self.ctx = ctx
        self.pipeline = env.deployment.pipeline
        self.results: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        #: Set when the run is being stopped; attempts that see it raise KeyboardInterrupt.
        self.stopping = threading.Event()
        self.progress: Progress | None = None

    # -- hooks -------------------------------------------------------------------------
    def run_attempt(self, step: StepIR) -> str | None:
        """Run one attempt of a step to its end; returns its status when known (``completed``, ``cached``).

        Raises:
            StepFailedError: the attempt failed (its step run is recorded failed).
            KeyboardInterrupt: the run is being stopped.
        """
        if step.settings.step_operator is not None:
            self.ctx.stack.component(ComponentType.STEP_OPERATOR).run_step(self.env, step.id)
            return None
        if not self._uses_process(step):
            from conveyor.runtime import execute_step

            return execute_step(self.env, step.id).status
        self._run_process(step)
        # Its process exited 0: without a cache to hit, the step completed (no need to ask the store).
        return None if self.env.deployment.pipeline.effective_cache(step) else RunStatus.COMPLETED

    def stop_running(self) -> None:
        """Stop every attempt that is running (Ctrl-C, SIGTERM): their processes get SIGTERM, then SIGKILL."""
        with self.lock:
            procs = list(self.processes.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def runs_in_this_process(self, step: StepIR) -> bool:
        """Whether an attempt of the step runs in this process's threads (it shares its file descriptors)."""
        return step.settings.step_operator is None and not self._uses_process(step)

    # -- one step in its own process ---------------------------------------------------
    def _uses_process(self, step: StepIR) -> bool:
        s = step.settings
        # Schedulers of the local family whose config has no mode (local_docker) run no step in threads.
        return (
            getattr(self.config, "mode", "process") == "process"
            or s.timeout is not None
            or bool(s.environment)
            or s.resources.memory is not None
        )

    def _run_process(self, step: StepIR) -> None:
        from conveyor.runtime import step_command
        from conveyor.secrets import process_environment

        cmd = step_command(self.env.deployment.id, step.id, run_id=self.env.run.id, python=sys.executable)
        # The step process may start outside the repository: tell it where this one's secrets key is
        # (a server keeps its key: its step processes get a run token instead).
        keys = process_environment() if self.ctx.store.backend != "rest" else {}
        environment = {**keys, **step.settings.environment, ENV_PARENT_PID: str(os.getpid())}
        if any("{{" in v for v in environment.values()):
            # {{name.key}} references: the values go to the step's process only, never into the deployment.
            from conveyor.exceptions import SecretError
            from conveyor.secrets import resolve_environment

            try:
                environment = resolve_environment(environment, self.ctx.store)
            except SecretError:
                pass  # the step process meets the same error and records it with the step run
        proc_env = step_process_env(self.ctx.store, self.ctx.source_root, environment, run_id=self.env.run.id)
        # Its own process group: a timeout or a stop ends the step's children too.
        proc = subprocess.Popen(
            cmd,
            env=proc_env,
            cwd=str(self.ctx.source_root) if self.ctx.source_root else None,
            start_new_session=True,
        )
        with self.lock:
            self.processes[step.id] = proc
        try:
            if step.settings.resources.memory is None:
                code = proc.wait(timeout=step.settings.timeout)
            else:
                code = _wait_within_memory(proc, step.settings.resources.memory, step.settings.timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            self._record_killed(step, f"timed out after {step.settings.timeout:g} s")
            raise StepFailedError(f"step {step.id!r} timed out after {step.settings.timeout:g} s") from None
        except _OverMemory as over:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            reason = (
                f"its process went over its memory limit ({step.settings.resources.memory_quantity()}: "
                f"{over.resident // 2**20} MiB resident) and was killed"
            )
            self._record_killed(step, reason)
            raise StepFailedError(f"step {step.id!r} failed: {reason}") from None
        finally:
            with self.lock:
                self.processes.pop(step.id, None)
            # Anything the step started and left behind goes with it.
            _signal_group(proc, signal.SIGKILL)
        if self.stopping.is_set():
            raise KeyboardInterrupt
        if code != 0:
            record = self._step_record(step.id)
            how = f"was killed ({_signal_name(-code)})" if code < 0 else f"exited with code {code}"
            reason = record.error if record is not None and record.error else f"its process {how}"
            if record is None or record.status == RunStatus.RUNNING:
                self._record_killed(step, reason)
            raise StepFailedError(f"step {step.id!r} failed: {reason}")

    def _step_record(self, step_id: str) -> Any:
        for record in self.env.store.list_step_runs(self.env.run.id):
            if record.step_id == step_id:
                return record
        return None

    def _record_killed(self, step: StepIR, reason: str) -> None:
        # The step process may die before it could record anything itself.
        record = self._step_record(step.id)
        if record is None:
            stamp = now()
            self.env.store.record_step_run(
                self.env.run.id,
                step.id,
                status=RunStatus.FAILED,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                error=reason,
                started=stamp,
                ended=stamp,
                attempts=1,
            )
        elif record.status == RunStatus.RUNNING:
            self.env.store.finish_step_run(record.id, RunStatus.FAILED, error=reason)

    def _worker(self, step: StepIR) -> None:
        error: BaseException | None = None
        try:
            error = self._attempts(step)
        except BaseException as exc:  # noqa: BLE001 - whatever happens, the scheduler hears of this step
            error = exc
        finally:
            self.results.put((step.id, error))

    def _attempts(self, step: StepIR) -> BaseException | None:
        error: BaseException | None = None
        status: str | None = None
        attempts = step.settings.retries + 1
        for attempt in range(1, attempts + 1):
            if self.progress is not None:
                self.progress.step_started(step.id)
            try:
                status = self.run_attempt(step)
                error = None
                break
            except BaseException as exc:  # noqa: BLE001 - reported to the scheduler thread
                error = exc
                if isinstance(exc, KeyboardInterrupt) or self.stopping.is_set() or attempt == attempts:
                    break
                time.sleep(step.settings.retry_delay)
        if error is not None and not isinstance(error, KeyboardInterrupt) and not self.stopping.is_set():
            self._failed_for_good(step, error)
        if self.progress is not None and not isinstance(error, KeyboardInterrupt):
            if error is None:
                record = None if status is not None else self._step_record(step.id)
                self.progress.step_ended(step.id, status or (record.status if record else RunStatus.COMPLETED))
            else:
                message = error.message if isinstance(error, StepFailedError) else str(error)
                self.progress.step_ended(step.id, RunStatus.FAILED, message.removeprefix(f"step {step.id!r} failed: "))
        return error

    def _failed_for_good(self, step: StepIR, error: BaseException) -> None:
        """After a step's last attempt failed: its failure hooks, unless its own process ran them.

        A step process that was killed (SIGKILL, out of memory, its timeout)
        could not run them; this process supervised it, so they run here.
        """
        if not step.settings.on_failure:
            return
        from conveyor.runtime import run_step_hooks

        record = self._step_record(step.id)
        reason = record.error if record is not None and record.error else None
        if reason is None:
            reason = (
                error.message.removeprefix(f"step {step.id!r} failed: ")
                if isinstance(error, StepFailedError)
                else str(error)
            )
        run_step_hooks(
            self.env.store, self.env.deployment, self.env.run, step.id, "failure", error=reason, stack=self.env.stack
        )

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> None:
        """Run every step; settle the run.

        Raises:
            StepFailedError: a step failed (after its retries); its downstream steps were skipped.
            KeyboardInterrupt: stopped by Ctrl-C or SIGTERM; the run is recorded stopped.
        """
        store, run = self.env.store, self.env.run
        self.progress = Progress(self.pipeline.name, run.name, run.stack_name, len(self.pipeline.steps))
        upstream = {s.id: set(s.upstream()) for s in self.pipeline.steps}
        downstream = self.pipeline.downstream()
        steps = {s.id: s for s in self.pipeline.steps}
        waiting = [s.id for s in self.pipeline.steps]
        done: set[str] = set()
        running: set[str] = set()
        failures: dict[str, BaseException] = {}
        skipped: set[str] = set()
        try:
            with _sigterm_as_interrupt(), self._masking():
                while waiting or running:
                    for sid in list(waiting):
                        if len(running) >= self.config.max_workers:
                            break
                        if upstream[sid] <= done:
                            waiting.remove(sid)
                            running.add(sid)
                            threading.Thread(
                                target=self._worker, args=(steps[sid],), daemon=True, name=f"conveyor-step-{sid}"
                            ).start()
                    if not running:
                        break
                    sid, error = self._next_result()
                    running.discard(sid)
                    if error is None:
                        done.add(sid)
                        continue
                    if isinstance(error, KeyboardInterrupt):
                        raise KeyboardInterrupt
                    failures[sid] = error
                    for dep in _descendants(sid, downstream):
                        if dep in waiting:
                            waiting.remove(dep)
                            skipped.add(dep)
        except KeyboardInterrupt:
            self._stop()
            raise
        for sid in sorted(skipped, key=list(steps).index):
            step = steps[sid]
            cause = next((f for f in failures if sid in _descendants(f, downstream)), None)
            self.progress.step_ended(sid, RunStatus.SKIPPED, f"upstream step {cause!r} failed")
            store.record_step_run(
                run.id,
                sid,
                status=RunStatus.SKIPPED,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                error=f"upstream step {cause!r} failed",
            )
        from conveyor.runtime import run_due_hooks

        if failures:
            first = next(iter(failures))
            message = str(failures[first])
            store.settle_run(run.id, RunStatus.FAILED, error=message)
            self.progress.run_ended(RunStatus.FAILED)
            run_due_hooks(store, self.env.deployment, run.id, stack=self.env.stack)
            exc = failures[first]
            if isinstance(exc, StepFailedError):
                raise StepFailedError(
                    f"{exc.message} (run {run.name!r}; logs: conveyor run describe {run.name})", exc.hint
                ) from exc
            raise StepFailedError(f"step {first!r} failed: {exc} (run {run.name!r})") from exc
        store.settle_run(run.id, RunStatus.COMPLETED)
        self.progress.run_ended(RunStatus.COMPLETED)
        run_due_hooks(store, self.env.deployment, run.id, stack=self.env.stack)

    def _masking(self) -> contextlib.AbstractContextManager[None]:
        # Steps that resolve secrets in this process: whatever they write to the raw file
        # descriptors (children, C code) is masked on its way to the terminal too.
        in_threads = [s for s in self.pipeline.steps if self.runs_in_this_process(s)]
        if any(s.settings.secrets for s in in_threads):
            from conveyor.runtime import mask_file_descriptors

            return mask_file_descriptors()
        return contextlib.nullcontext()

    def _next_result(self) -> tuple[str, BaseException | None]:
        # A timeout keeps the main thread responsive to Ctrl-C.
        while True:
            try:
                return self.results.get(timeout=0.2)
            except queue.Empty:
                continue

    def _stop(self) -> None:
        from conveyor._repository import remove_temporary_folders

        if self.progress is not None:
            self.progress.run_ended(RunStatus.STOPPED)
        self.stopping.set()
        self.stop_running()
        self.env.store.settle_run(
            self.env.run.id, RunStatus.STOPPED, error="stopped by Ctrl-C or SIGTERM", running_steps=RunStatus.STOPPED
        )
        # Saves cut short in this process's threads leave their temporary folders behind.
        with contextlib.suppress(Exception):
            remove_temporary_folders(self.env.store, self.env.run, self.env.deployment)


MEMORY_CHECK_INTERVAL = 0.1
"""Seconds between two readings of a step process's memory, when its step sets ``resources.memory``."""


class _OverMemory(Exception):
    def __init__(self, resident: int) -> None:
        super().__init__(resident)
        self.resident = resident


def _resident_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` and everything it started (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in family:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass  # ended between the listing and the reading
    return total


def _wait_within_memory(proc: subprocess.Popen[bytes], limit: int, timeout: float | None) -> int:
    """``proc.wait(timeout)``, reading the memory of its process tree meanwhile.

    Raises:
        subprocess.TimeoutExpired: ``timeout`` passed.
        _OverMemory: the tree's resident memory went over ``limit`` bytes.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = MEMORY_CHECK_INTERVAL if deadline is None else min(MEMORY_CHECK_INTERVAL, deadline - time.monotonic())
        try:
            return proc.wait(timeout=max(wait, 0))
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        resident = _resident_bytes(proc.pid)
        if resident > limit:
            raise _OverMemory(resident)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The step process leads its own group; its children are in it unless they left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a run is driven from the main thread, SIGTERM stops it as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _descendants(step_id: str, downstream: dict[str, tuple[str, ...]]) -> set[str]:
    out: set[str] = set()
    pending = list(downstream[step_id])
    while pending:
        sid = pending.pop()
        if sid not in out:
            out.add(sid)
            pending.extend(downstream[sid])
    return out


class LocalOrchestrator(BaseOrchestrator):
    """Runs a pipeline now, on this machine, and waits for it."""

    scheduler_class: type[LocalScheduler] = LocalScheduler
    """The scheduler that runs the steps; the local family replaces it to run steps elsewhere."""

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str:
        from conveyor.runtime import RunEnvironment

        run = self.create_run(deployment, ctx, owned=True)
        env = RunEnvironment(store=ctx.store, stack=ctx.stack, deployment=deployment, run=run, prefix_output=True)
        self.scheduler_class(self.config, env, ctx).run()
        return run.id


class LocalOrchestratorFlavor(Flavor):
    """Runs pipelines on this machine, now."""

    type = ComponentType.ORCHESTRATOR
    name = "local"
    description = "runs steps on this machine, independent ones in parallel"
    capabilities = frozenset({Capability.PARALLELISM, Capability.RETRIES, Capability.TIMEOUTS, Capability.RESOURCES})

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return LocalOrchestratorConfig

    def implementation(self) -> builtins.type[LocalOrchestrator]:
        return LocalOrchestrator


__all__ = [
    "LocalOrchestrator",
    "LocalOrchestratorConfig",
    "LocalOrchestratorFlavor",
    "LocalScheduler",
    "RunStoppedError",
]
