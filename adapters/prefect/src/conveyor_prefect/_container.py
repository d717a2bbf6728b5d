"""Running a step command in the pipeline's image, for ``step_mode: container``.

The container shares the host's network (the metadata store and artifact
store stay reachable at the same addresses) and sees local stores and the
source folder at the same paths as the flow's process.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import StackError

if TYPE_CHECKING:
    from conveyor.runtime import RunEnvironment

_PASSED_ENV = ("CONVEYOR_STORE_URL", "CONVEYOR_SOURCE_ROOT")


def _local_folders(env: RunEnvironment, source_root: Path | None) -> list[str]:
    folders: list[str] = []
    database = env.store.url.database if env.store.url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:":
        folders.append(str(Path(database).resolve().parent))
    path = env.artifact_store.path
    if "://" not in path or path.startswith("file://"):
        folders.append(str(Path(path.removeprefix("file://")).resolve()))
    if source_root is not None:
        folders.append(str(source_root.resolve()))
    return sorted(set(folders))


class ContainerProcess:
    """A running step container with the ``Popen`` methods the flow driver uses."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                self.returncode = int(self.container.attrs["State"]["ExitCode"])
                self._remove()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("docker run", timeout or 0)
            time.sleep(0.1)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.container.kill(signal=int(sig))

    def kill(self) -> None:
        self.container.kill()

    def _remove(self) -> None:
        try:
            print(self.container.logs().decode("utf-8", "replace"), end="")
            self.container.remove(force=True)
        except Exception:
            pass


def start_container(image: str, argv: list[str], env: dict[str, str], run_env: RunEnvironment,
                    source_root: Path | None) -> ContainerProcess:
    """Start ``argv`` in ``image`` with host networking and the local stores mounted.

    Raises:
        StackError: the docker package is missing or no Docker daemon answers.
    """
    try:
        import docker
    except ImportError:
        raise StackError("step_mode 'container' needs the docker package",
                         'run: pip install "conveyor[docker]"') from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise StackError(f"step_mode 'container': no Docker daemon answers ({exc})",
                         "start Docker, or use step_mode: subprocess") from None
    passed = {k: v for k, v in env.items() if k in _PASSED_ENV}
    step = run_env.deployment.pipeline.step(argv[argv.index("--step") + 1])
    passed.update(step.settings.environment)
    volumes = {folder: {"bind": folder, "mode": "rw"} for folder in _local_folders(run_env, source_root)}
    container = client.containers.run(
        image, argv, environment=passed, volumes=volumes, network_mode="host", detach=True,
        working_dir=str(source_root) if source_root else None,
    )
    return ContainerProcess(container)
