"""Steps in the pipeline's image, for ``step_mode: container``: conveyor-docker's step containers.

A Prefect task thread may get an exception thrown into it at any moment
(Prefect enforces task timeouts that way). conveyor-docker's
``StepContainer`` therefore runs in a thread of its own, and the task thread
follows it through the few ``Popen`` methods the flow driver uses: whatever
lands in the task thread, the container is still stopped and removed.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import StackError

if TYPE_CHECKING:
    from conveyor.runtime import RunEnvironment

DOCKER_INSTALL = (
    'in the root folder of a conveyor clone: pip install ./core ./integrations/docker "./adapters/prefect[docker]"'
)
"""Where and how the docker work pool's parts are installed (prefect-docker and conveyor-docker)."""
_INSTALL_HINT = f"run {DOCKER_INSTALL}"


@functools.cache
def step_container_class() -> type[Any]:
    """conveyor-docker's ``StepContainer`` (its command carries the run's parameter overrides).

    Raises:
        StackError: conveyor-docker is not installed.
    """
    try:
        from conveyor_docker import StepContainer
    except ImportError:
        raise StackError("step_mode 'container' needs conveyor-docker, which is not installed", _INSTALL_HINT) from None
    return StepContainer


class ContainerStep:
    """One step running in a container, followed like a process.

    Args:
        env: the run the step belongs to.
        step_id: the step.
        image: the image reference (with digest).
        stop_timeout: seconds the step gets between SIGINT and SIGKILL when stopped.

    Raises:
        StackError: conveyor-docker is not installed.
    """

    def __init__(self, env: RunEnvironment, step_id: str, image: str, *, stop_timeout: float) -> None:
        step = env.deployment.pipeline.step(step_id)
        self.step_container = step_container_class()(env, step, image, stop_timeout=stop_timeout)
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.returncode: int | None = None
        self._stopper: threading.Thread | None = None
        # An event, not Thread.join: a join interrupted by an exception thrown into the
        # waiting thread can leave the followed thread marked as ended while it runs.
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True, name=f"conveyor-container-{step_id}").start()

    def _run(self) -> None:
        from conveyor.exceptions import StepFailedError

        code = 2
        try:
            self.step_container.run(self.stopping)
            code = 0
        except KeyboardInterrupt:  # stopped through self.stopping
            code = -2
        except StepFailedError as exc:
            self.error, code = exc, 1
        except BaseException as exc:  # docker refused the container: the command's setup is wrong
            self.error = exc
        finally:
            self.returncode = code
            self._done.set()

    def poll(self) -> int | None:
        """The exit code once the step's container is gone, else None."""
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the step to end and its container to be removed.

        Raises:
            subprocess.TimeoutExpired: it did not end within ``timeout`` seconds.
        """
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"step container {self.step_container.step.id}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Stop the step: SIGINT to its container, SIGKILL after the stop timeout, then removal."""
        del sig  # a step in a container is always stopped the way conveyor-docker stops it
        if self.stopping.is_set():
            return
        self.stopping.set()
        # A container not created yet is removed by its own thread, which sees the event.
        if self.step_container.container is not None:
            self._stopper = threading.Thread(target=self.step_container.stop, daemon=True)
            self._stopper.start()

    def kill(self) -> None:
        """Remove the container at once (killing it if it still runs)."""
        self.stopping.set()
        self.step_container.remove()
