"""Running one step in a container: the part the orchestrator and the step operator share.

The container runs the step entrypoint
(``python -m conveyor.runtime run-step ... --image REF``) with host
networking, so services on 127.0.0.1 of this machine are reachable. Only
stores that live on this machine (a SQLite file, a local artifact folder) are
mounted, at the same paths; a stack with a database server and an object
store mounts nothing.

Containers are removed when their step ends, and stopped and removed on
Ctrl-C or when the process exits.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import StackError, StepFailedError
from conveyor.ir import ResourceSettings
from conveyor.stores import RunStatus
from conveyor_docker._client import docker_client

if TYPE_CHECKING:
    from conveyor.ir import StepIR
    from conveyor.runtime import RunEnvironment

# The step's own hostname: with host networking a container would otherwise
# share this machine's, and the store would take this process's runs for
# runs of a process that died inside the container.
STEP_HOSTNAME = "conveyor-step"
ENTRYPOINT = ["python", "-m", "conveyor.runtime"]
LOG_LINES_KEPT = 200

_live: dict[str, Any] = {}
_live_lock = threading.Lock()


def _cleanup_at_exit() -> None:
    with _live_lock:
        containers = list(_live.values())
    for container in containers:
        _stop_and_remove(container, timeout=5.0)


atexit.register(_cleanup_at_exit)


def _stop_and_remove(container: Any, timeout: float) -> None:
    """SIGINT (the step records itself as stopped), then SIGKILL after ``timeout``; then remove."""
    import docker
    import requests

    try:
        container.kill(signal="SIGINT")
        container.wait(timeout=timeout)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        pass
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError:
        pass
    with _live_lock:
        _live.pop(container.id, None)


def store_mounts(store_url: Any, artifact_path: str) -> list[str]:
    """Folders of this machine the step containers need: a SQLite file's folder, a local artifact store.

    ``store_url`` is None for a conveyor server (its steps reach it over HTTP).

    Raises:
        StackError: the metadata store is an in-memory SQLite database.
    """
    from conveyor.stores import local_store_folders

    database = ""  # a conveyor server (None): nothing of this machine's database is needed
    if store_url is not None:
        import sqlalchemy as sa

        url = sa.make_url(store_url)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise StackError(
                "step containers cannot share an in-memory SQLite metadata store",
                "use a SQLite file, or a MySQL/PostgreSQL server (CONVEYOR_STORE_URL)",
            )
        database = url.render_as_string(hide_password=False)
    local = artifact_path.removeprefix("file://")
    if local and "://" not in local:
        Path(local).mkdir(parents=True, exist_ok=True)
    return local_store_folders(database, artifact_path)


def secrets_environment(env: RunEnvironment, step: StepIR) -> dict[str, str]:
    """What a step container needs to resolve secrets: the key and the owner id, or nothing.

    Given only when the step declares secrets or the step or the stack refers
    to one (``{{name.key}}``). They go into the container's runtime
    environment, never into an image: the container sees neither this
    machine's key file nor its repository's owner file.
    """
    from conveyor.secrets import has_references

    configs = [c.config for c in env.deployment.stack]
    if not (step.settings.secrets or has_references(dict(step.settings.environment)) or has_references(configs)):
        return {}
    from conveyor.exceptions import SecretError
    from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_OWNER, current_owner, load_keyring

    try:
        keyring = load_keyring()
    except SecretError:
        # No key here: the step fails inside its container, naming the secret it could not read.
        return {}
    out = {ENV_SECRETS_KEY: ",".join(k.decode("ascii") for k in keyring.keys)}
    owner = current_owner()
    if owner:
        out[ENV_SECRETS_OWNER] = owner
    return out


class StepContainer:
    """One step's container: created, started, followed, stopped and removed.

    Args:
        env: the run the step belongs to.
        step: the step.
        image: the image reference (with digest).
        run_args: extra keyword arguments of ``containers.create``.
        stop_timeout: seconds a stopped step gets before it is killed.
    """

    def __init__(
        self,
        env: RunEnvironment,
        step: StepIR,
        image: str,
        *,
        run_args: dict[str, Any] | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.env = env
        self.step = step
        self.image = image
        self.run_args = dict(run_args or {})
        self.stop_timeout = stop_timeout
        self.container: Any = None
        self.lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._follower: threading.Thread | None = None

    # -- options -----------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The step command this container runs (the run's parameter overrides included)."""
        from conveyor.ir import canonical_json
        from conveyor.runtime import step_command

        return step_command(
            self.env.deployment.id,
            self.step.id,
            run_id=self.env.run.id,
            image=self.image,
            params={name: canonical_json(value) for name, value in self.env.overrides.items()},
        )

    def command(self) -> list[str]:
        """Arguments of the step entrypoint (the container's entrypoint is the interpreter and ``-m conveyor.runtime``)."""
        return self.argv()[len(ENTRYPOINT) :]

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``containers.create``."""
        from docker.types import Mount

        store = self.env.store
        on_server = store.backend == "rest"
        # A server's steps get its URL and a token of their run; the server resolves their secrets.
        mounts = store_mounts(None if on_server else store.url, self.env.artifact_store.path)
        environment = {
            **store.child_environment(self.env.run.id),
            **({} if on_server else secrets_environment(self.env, self.step)),
            **self.step.settings.environment,
        }
        options: dict[str, Any] = {
            "entrypoint": self.argv()[: len(ENTRYPOINT)],
            "command": self.command(),
            "environment": environment,
            "network_mode": "host",
            "hostname": STEP_HOSTNAME,
            "labels": {
                "conveyor.run": self.env.run.id,
                "conveyor.step": self.step.id,
                "conveyor.pipeline": self.env.deployment.pipeline.name,
            },
            "mounts": [Mount(target=m, source=m, type="bind") for m in mounts],
        }
        if mounts and os.getuid() != 0:
            # Files written into this machine's folders belong to the user who runs the pipeline.
            options["user"] = f"{os.getuid()}:{os.getgid()}"
            environment.setdefault("HOME", "/tmp")
        resources = self.step.settings.resources
        if resources.cpu is not None:
            options["nano_cpus"] = int(resources.cpu * 1e9)
        if resources.memory is not None:
            options["mem_limit"] = resources.memory  # bytes: the IR parsed the size once
        options.update(self.run_args)
        return options

    # -- running -----------------------------------------------------------------------
    def run(self, stopping: threading.Event | None = None) -> None:
        """Run the step to its end.

        Raises:
            StepFailedError: the step failed, timed out or its container could not start.
            KeyboardInterrupt: ``stopping`` was set while the step ran.
        """
        import docker
        import requests

        client = docker_client()
        self._ensure_image(client)
        try:
            self.container = client.containers.create(self.image, **self.options())
        except docker.errors.APIError as exc:
            raise StackError(
                f"cannot create the container of step {self.step.id!r}: {exc.explanation or exc}"
            ) from None
        with _live_lock:
            _live[self.container.id] = self.container
        try:
            if stopping is not None and stopping.is_set():
                raise KeyboardInterrupt
            try:
                self.container.start()
            except docker.errors.APIError as exc:
                self._record_failure(f"its container did not start: {exc.explanation or exc}")
                raise StepFailedError(
                    f"step {self.step.id!r} failed: its container did not start: {exc.explanation or exc}"
                ) from None
            self._follower = threading.Thread(target=self._follow, daemon=True, name=f"conveyor-logs-{self.step.id}")
            self._follower.start()
            timeout = self.step.settings.timeout
            try:
                code = int(self.container.wait(timeout=timeout).get("StatusCode", 1))
            except requests.exceptions.RequestException:
                if stopping is not None and stopping.is_set():
                    raise KeyboardInterrupt from None
                self._kill()
                reason = f"timed out after {timeout:g} s"
                self._record_failure(reason)
                raise StepFailedError(f"step {self.step.id!r} {reason}") from None
            self._follower.join(timeout=5)
            if stopping is not None and stopping.is_set():
                raise KeyboardInterrupt
            if code != 0:
                reason = self._record_failure(self._exit_reason(code))
                raise StepFailedError(f"step {self.step.id!r} failed: {reason}")
        finally:
            self.remove()

    def stop(self) -> None:
        """Stop the container (SIGINT, then SIGKILL after the stop timeout) and remove it."""
        if self.container is not None:
            _stop_and_remove(self.container, self.stop_timeout)

    def remove(self) -> None:
        """Remove the container (killing it if it still runs)."""
        import docker

        if self.container is None:
            return
        try:
            self.container.remove(force=True)
        except docker.errors.APIError:
            pass
        with _live_lock:
            _live.pop(self.container.id, None)

    def _kill(self) -> None:
        import docker

        try:
            self.container.kill()
        except docker.errors.APIError:
            pass

    def _exit_reason(self, code: int) -> str:
        """Why the container ended with ``code``: out of its memory limit (the kernel killed it), or its exit code."""
        import docker

        try:
            self.container.reload()
            state = self.container.attrs.get("State") or {}
            limit = (self.container.attrs.get("HostConfig") or {}).get("Memory") or 0
        except docker.errors.APIError:
            state, limit = {}, 0
        if state.get("OOMKilled"):
            # The step's own process was killed with SIGKILL and could record nothing: say why here.
            within = f" (its memory limit is {ResourceSettings(memory=limit).memory_quantity()})" if limit else ""
            return f"its container ran out of memory{within} and was killed"
        return f"its container exited with code {code}" + _exit_note(code)

    def _ensure_image(self, client: Any) -> None:
        import docker
        import requests

        from conveyor.stack import ComponentType

        try:
            client.images.get(self.image)
            return
        except docker.errors.ImageNotFound:
            pass
        auth = None
        if self.env.stack.ir.get(ComponentType.CONTAINER_REGISTRY) is not None:
            auth = self.env.stack.component(ComponentType.CONTAINER_REGISTRY).auth_config()
        try:
            client.images.pull(self.image, auth_config=auth)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0]
            raise StackError(
                f"cannot pull image {self.image} for step {self.step.id!r}: {reason}",
                "check that the stack's container registry is running and holds the image",
            ) from None

    def _follow(self) -> None:
        """Copy the container's output to this process's stdout, keeping the last lines."""
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                text = chunk.decode("utf-8", "replace")
                self.lines.extend(text.splitlines())
                sys.stdout.write(text)
            sys.stdout.flush()
        except Exception:
            pass

    def logs(self) -> str:
        """The container's output so far (the last lines)."""
        return "\n".join(self.lines)

    def _record_failure(self, reason: str) -> str:
        """Make sure the step run ends failed, with the container's output in its logs; returns the reason."""
        store, run, step = self.env.store, self.env.run, self.step
        if self._follower is not None:
            self._follower.join(timeout=5)
        record = next((r for r in store.list_step_runs(run.id) if r.step_id == step.id), None)
        if record is not None and record.status != RunStatus.RUNNING:
            return record.error or reason  # the entrypoint recorded the failure itself
        last = next((line for line in reversed(self.lines) if line.strip()), "")
        error = f"{reason}: {last.strip()}" if last and "exited with code" in reason else reason
        artifact_store = self.env.artifact_store
        logs_uri = artifact_store.join(self.env.deployment.pipeline.name, step.id, run.name, "logs.txt")
        if record is None:
            record = store.start_step_run(
                run.id,
                step.id,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                logs_uri=logs_uri,
                image=self.image,
            )
        try:
            with artifact_store.open(record.logs_uri or logs_uri, "wb") as f:
                f.write((self.logs() + f"\nconveyor: {error}\n").encode("utf-8", "replace"))
        except Exception:
            pass
        store.finish_step_run(record.id, RunStatus.FAILED, error=error)
        return error


def _exit_note(code: int) -> str:
    return {137: " (killed: out of memory or stopped)", 139: " (segmentation fault)"}.get(code, "")
