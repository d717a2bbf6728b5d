"""The ``docker`` step operator: runs the steps that ask for it in a container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.exceptions import StackError
from conveyor.orchestrators import BaseStepOperator
from conveyor_docker._containers import StepContainer

if TYPE_CHECKING:
    from conveyor.runtime import RunEnvironment


class DockerStepOperator(BaseStepOperator):
    """Runs one step in a container of the deployment's image and waits for it.

    The orchestrator keeps scheduling; only the steps with
    ``@step(step_operator="docker")`` come here. Containers still running
    when the process exits (Ctrl-C) are stopped and removed.
    """

    def run_step(self, env: RunEnvironment, step_id: str) -> None:
        """Run one step in a container to its end.

        Raises:
            StepFailedError: the step failed or timed out.
            StackError: the deployment has no image for the step, or docker cannot run it.
        """
        image = env.deployment.image_for(step_id)
        if image is None:
            raise StackError(
                f"the deployment has no image for step {step_id!r}",
                "the stack needs an image-builder and a container-registry for the docker step operator",
            )
        step = env.deployment.pipeline.step(step_id)
        StepContainer(
            env, step, image, run_args=dict(self.config.run_args), stop_timeout=self.config.stop_timeout
        ).run()
