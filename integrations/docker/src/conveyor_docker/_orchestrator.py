"""The ``local_docker`` orchestrator: every step runs as a container on this machine.

Scheduling (parallel independent steps, retries, skipping after a failure,
Ctrl-C) is the local orchestrator's; only where a step runs differs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from conveyor.orchestrators import LocalOrchestrator, LocalScheduler
from conveyor.stack import ComponentType
from conveyor_docker._containers import StepContainer

if TYPE_CHECKING:
    from conveyor.ir import StepIR


class ContainerScheduler(LocalScheduler):
    """The local scheduler, with each attempt of a step run in its own container."""

    def __init__(self, config: Any, env: Any, ctx: Any) -> None:
        super().__init__(config, env, ctx)
        self.containers: dict[str, StepContainer] = {}

    def run_attempt(self, step: StepIR) -> str | None:
        if step.settings.step_operator is not None:
            return super().run_attempt(step)  # the stack's step operator runs it
        image = self.env.deployment.image_for(step.id)
        if image is None:
            from conveyor.exceptions import StackError

            raise StackError(
                f"the deployment has no image for step {step.id!r}",
                f"the stack needs an {ComponentType.cli_name(ComponentType.IMAGE_BUILDER)}",
            )
        container = StepContainer(
            self.env, step, image, run_args=dict(self.config.run_args), stop_timeout=self.config.stop_timeout
        )
        with self.lock:
            self.containers[step.id] = container
        try:
            container.run(self.stopping)
        finally:
            with self.lock:
                self.containers.pop(step.id, None)
        return None

    def runs_in_this_process(self, step: StepIR) -> bool:
        return False  # every step runs in a container, or with the stack's step operator

    def stop_running(self) -> None:
        with self.lock:
            containers = list(self.containers.values())
        # In parallel: each may take the stop timeout.
        if containers:
            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                list(pool.map(lambda c: c.stop(), containers))
        super().stop_running()


class LocalDockerOrchestrator(LocalOrchestrator):
    """Runs a pipeline now, each step in a container of the deployment's image, and waits for it."""

    scheduler_class = ContainerScheduler
