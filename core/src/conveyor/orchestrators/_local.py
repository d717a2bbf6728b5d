"""The local orchestrator: runs steps on this machine, independent ones in parallel.

Steps run in threads of this process (fast) or, with ``mode: process``, each
in a fresh ``python -m conveyor.runtime run-step`` process, the command every
other engine runs. Steps with a timeout or environment variables always get
their own process, since a thread can be neither stopped nor given its own
environment.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.exceptions import RunStoppedError, StepFailedError
from conveyor.orchestrators._base import BaseOrchestrator, LaunchContext, step_process_env
from conveyor.stack import Capability, ComponentType, Flavor
from conveyor.stores import RunStatus

if TYPE_CHECKING:
    from conveyor.ir import Deployment, StepIR
    from conveyor.runtime._executor import RunEnvironment


class LocalOrchestratorConfig(BaseModel):
    """Config of the ``local`` orchestrator."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int = Field(default=32, ge=1)
    """How many steps may run at once."""
    mode: Literal["thread", "process"] = "thread"
    """``thread``: steps run in this process; ``process``: each in its own step process."""


class LocalOrchestrator(BaseOrchestrator):
    """Runs a pipeline now, on this machine, and waits for it."""

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str:
        from conveyor.runtime._executor import RunEnvironment

        run = self.create_run(deployment, ctx, owned=True)
        env = RunEnvironment(store=ctx.store, stack=ctx.stack, deployment=deployment, run=run)
        _Scheduler(self.config, env, ctx).run()
        return run.id


class _Scheduler:
    def __init__(self, config: LocalOrchestratorConfig, env: RunEnvironment, ctx: LaunchContext) -> None:
        self.config = config
        self.env = env
        self.ctx = ctx
        self.pipeline = env.deployment.pipeline
        self.results: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- one step --------------------------------------------------------------------
    def _uses_process(self, step: StepIR) -> bool:
        s = step.settings
        return self.config.mode == "process" or s.timeout is not None or bool(s.environment)

    def _attempt(self, step: StepIR) -> None:
        if step.settings.step_operator is not None:
            self.ctx.stack.component(ComponentType.STEP_OPERATOR).run_step(self.env, step.id)
            return
        if not self._uses_process(step):
            from conveyor.runtime._executor import execute_step

            execute_step(self.env, step.id)
            return
        cmd = [
            sys.executable,
            "-m",
            "conveyor.runtime",
            "run-step",
            "--deployment",
            self.env.deployment.id,
            "--run-id",
            self.env.run.id,
            "--step",
            step.id,
        ]
        from conveyor.secrets import process_environment

        # The step process may start outside the repository: tell it where this one's secrets key is.
        environment = {**process_environment(), **step.settings.environment}
        if any("{{" in v for v in environment.values()):
            # {{name.key}} references: the values go to the step's process only, never into the deployment.
            from conveyor.exceptions import SecretError
            from conveyor.secrets import resolve_environment

            try:
                environment = resolve_environment(environment, self.ctx.store)
            except SecretError:
                pass  # the step process meets the same error and records it with the step run
        proc_env = step_process_env(
            self.ctx.store.url.render_as_string(hide_password=False), self.ctx.source_root, environment
        )
        proc = subprocess.Popen(cmd, env=proc_env, cwd=str(self.ctx.source_root) if self.ctx.source_root else None)
        with self.lock:
            self.processes[step.id] = proc
        try:
            code = proc.wait(timeout=step.settings.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._record_killed(step, f"timed out after {step.settings.timeout:g} s")
            raise StepFailedError(f"step {step.id!r} timed out after {step.settings.timeout:g} s") from None
        finally:
            with self.lock:
                self.processes.pop(step.id, None)
        if self.stopping.is_set():
            raise KeyboardInterrupt
        if code != 0:
            record = self._step_record(step.id)
            reason = record.error if record is not None and record.error else f"its process exited with code {code}"
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
            from conveyor.stores._metadata import now

            self.env.store.record_step_run(
                self.env.run.id,
                step.id,
                status=RunStatus.FAILED,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                error=reason,
                started=now(),
                ended=now(),
                attempts=1,
            )
        elif record.status == RunStatus.RUNNING:
            self.env.store.finish_step_run(record.id, RunStatus.FAILED, error=reason)

    def _worker(self, step: StepIR) -> None:
        error: BaseException | None = None
        attempts = step.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._attempt(step)
                error = None
                break
            except BaseException as exc:  # noqa: BLE001 - reported to the scheduler thread
                error = exc
                if isinstance(exc, KeyboardInterrupt) or self.stopping.is_set() or attempt == attempts:
                    break
                time.sleep(step.settings.retry_delay)
        self.results.put((step.id, error))

    # -- the whole run ---------------------------------------------------------------
    def run(self) -> None:
        from conveyor.stores._metadata import now

        store, run = self.env.store, self.env.run
        upstream = {s.id: set(s.upstream()) for s in self.pipeline.steps}
        downstream = self.pipeline.downstream()
        steps = {s.id: s for s in self.pipeline.steps}
        waiting = [s.id for s in self.pipeline.steps]
        done: set[str] = set()
        running: set[str] = set()
        failures: dict[str, BaseException] = {}
        skipped: set[str] = set()
        try:
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
            self._stop(running)
            raise
        for sid in sorted(skipped, key=list(steps).index):
            step = steps[sid]
            cause = next((f for f in failures if sid in _descendants(f, downstream)), None)
            store.record_step_run(
                run.id,
                sid,
                status=RunStatus.SKIPPED,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                error=f"upstream step {cause!r} failed",
            )
        if failures:
            first = next(iter(failures))
            message = str(failures[first])
            store.update_run(run.id, status=RunStatus.FAILED, ended=now(), error=message)
            exc = failures[first]
            if isinstance(exc, StepFailedError):
                raise StepFailedError(
                    f"{exc.message} (run {run.name!r}; logs: conveyor run describe {run.name})", exc.hint
                ) from exc
            raise StepFailedError(f"step {first!r} failed: {exc} (run {run.name!r})") from exc
        store.update_run(run.id, status=RunStatus.COMPLETED, ended=now())

    def _next_result(self) -> tuple[str, BaseException | None]:
        # A timeout keeps the main thread responsive to Ctrl-C.
        while True:
            try:
                return self.results.get(timeout=0.2)
            except queue.Empty:
                continue

    def _stop(self, running: set[str]) -> None:
        from conveyor.stores._metadata import now

        self.stopping.set()
        with self.lock:
            procs = list(self.processes.values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        store, run = self.env.store, self.env.run
        for record in store.list_step_runs(run.id):
            if record.status == RunStatus.RUNNING:
                store.finish_step_run(record.id, RunStatus.STOPPED, error="stopped by Ctrl-C")
        store.update_run(run.id, status=RunStatus.STOPPED, ended=now(), error="stopped by Ctrl-C")


def _descendants(step_id: str, downstream: dict[str, tuple[str, ...]]) -> set[str]:
    out: set[str] = set()
    pending = list(downstream[step_id])
    while pending:
        sid = pending.pop()
        if sid not in out:
            out.add(sid)
            pending.extend(downstream[sid])
    return out


class LocalOrchestratorFlavor(Flavor):
    """Runs pipelines on this machine, now."""

    type = ComponentType.ORCHESTRATOR
    name = "local"
    description = "runs steps on this machine, independent ones in parallel"
    capabilities = frozenset({Capability.PARALLELISM, Capability.RETRIES, Capability.TIMEOUTS, Capability.RESOURCES})

    @property
    def config_class(self) -> type[BaseModel]:
        return LocalOrchestratorConfig

    def implementation(self) -> type[LocalOrchestrator]:
        return LocalOrchestrator


__all__ = ["LocalOrchestrator", "LocalOrchestratorConfig", "LocalOrchestratorFlavor", "RunStoppedError"]
