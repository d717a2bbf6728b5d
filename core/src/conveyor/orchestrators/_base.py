"""The orchestrator base class: decides *where* and *when* steps run."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.stack import StackComponent

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.runtime import RunEnvironment
    from conveyor.stack import Stack
    from conveyor.stores import RunRecord
    from conveyor.stores._metadata import MetadataStore


@dataclass
class LaunchContext:
    """What an orchestrator gets besides the deployment."""

    store: MetadataStore
    stack: Stack
    source_root: Path | None = None


def code_version(folder: Path | None) -> tuple[str | None, bool | None]:
    """``(git commit, tree is dirty)`` of the folder's git checkout, or ``(None, None)``."""
    if folder is None:
        return None, None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit.stdout.strip() or None, bool(status.stdout.strip())


def write_file_atomically(path: Path, data: bytes, *, hint: str, parents: bool = False) -> Path:
    """Write ``data`` to ``path`` through a hidden temporary name and a rename, so a reader
    (an Airflow dag-processor, a KFP upload) never sees half a file.

    Args:
        path: the file to write (replaced if it exists).
        data: its whole content.
        hint: how to fix an unwritable folder, for the error.
        parents: create missing parent folders first.

    Raises:
        ConfigError: the folder cannot be created or written; nothing is left behind.
    """
    import tempfile

    from conveyor.exceptions import ConfigError

    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write to {path.parent}: {exc.strerror}", hint) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        raise
    return path


def make_run_name(pipeline: str, template: str | None) -> str:
    """A run name from a template (``{date}``, ``{time}``) or the default pattern."""
    stamp = datetime.now(timezone.utc)
    date, clock = stamp.strftime("%Y_%m_%d"), stamp.strftime("%H_%M_%S_%f")
    if template:
        return template.format(date=date, time=clock, pipeline=pipeline)
    return f"{pipeline}-{date}-{clock}"


class BaseOrchestrator(StackComponent):
    """Runs or submits a deployment.

    :meth:`run` validates, stores the deployment and times the submission,
    then calls :meth:`_run`, which subclasses implement.
    """

    def run(self, deployment: Deployment, ctx: LaunchContext) -> str | None:
        """Run (or submit) a deployment; returns the id of the conveyor run.

        Orchestrators that deploy a scheduled pipeline instead of running it
        return None.

        Raises:
            StackError, CapabilityError: the stack cannot run the pipeline.
            StepFailedError: a step failed (orchestrators that wait for the run).
        """
        deployment = self.prepare(deployment, ctx)
        started = time.perf_counter()
        run_id = self._run(deployment, ctx)
        self.submit_seconds = time.perf_counter() - started
        return run_id

    def export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        """Write what the engine reads (a DAG file, a pipeline spec) without running it.

        Returns the files written.

        Raises:
            StackError: this orchestrator has nothing to export.
        """
        if type(self)._export is BaseOrchestrator._export:
            self._export(deployment, ctx, output)  # raises, before anything is stored
        deployment = self.prepare(deployment, ctx)
        return self._export(deployment, ctx, output)

    def prepare(self, deployment: Deployment, ctx: LaunchContext) -> Deployment:
        """Validate the deployment, build its images where needed, and store it."""
        ctx.stack.validate(deployment.pipeline, deployment.schedule)
        if not deployment.images and needs_images(deployment, ctx.stack, self):
            from conveyor.stack import ComponentType

            builder = ctx.stack.component(ComponentType.IMAGE_BUILDER)
            deployment = deployment.model_copy(update={"images": builder.build_images(deployment, ctx)})
        pipeline = ctx.store.get_or_create_pipeline(deployment.pipeline.name)
        ctx.store.save_deployment(deployment.id, pipeline.id, deployment.canonical_json())
        return deployment

    def needs_images(self, deployment: Deployment) -> bool:
        """Whether this orchestrator runs the deployment's steps in container images.

        The default is the flavor's ``Capability.CONTAINER_IMAGE``; an
        orchestrator whose config decides where steps run overrides this.
        """
        from conveyor.stack import Capability

        return Capability.CONTAINER_IMAGE in self.flavor.capabilities

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | None:
        raise NotImplementedError

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        from conveyor.exceptions import StackError

        raise StackError(
            f"the {self.flavor.name!r} orchestrator runs pipelines directly and has nothing to export",
            "export with a stack whose orchestrator is airflow, kubeflow or prefect",
        )

    def create_run(self, deployment: Deployment, ctx: LaunchContext, *, owned: bool, **values: Any) -> RunRecord:
        """Record a new run of the deployment.

        Args:
            owned: this process drives the run, so a run left ``running`` when
                it dies is marked failed later.
        """
        from conveyor.stores import RunStatus
        from conveyor.stores._metadata import current_process_identity, now

        pipeline = ctx.store.get_or_create_pipeline(deployment.pipeline.name)
        commit, dirty = code_version(ctx.source_root)
        host, pid, pid_started = current_process_identity() if owned else (None, None, None)
        values.setdefault("status", RunStatus.RUNNING)
        values.setdefault("started", now())
        return ctx.store.create_run(
            name=make_run_name(deployment.pipeline.name, deployment.run_name),
            pipeline_id=pipeline.id,
            deployment_id=deployment.id,
            parameters=dict(deployment.pipeline.parameters),
            stack_name=ctx.stack.name,
            orchestrator=self.flavor.name,
            code_commit=commit,
            code_dirty=dirty,
            host=host,
            pid=pid,
            pid_started=pid_started,
            **values,
        )


def needs_images(deployment: Deployment, stack: Stack, orchestrator: BaseOrchestrator | None = None) -> bool:
    """Whether any step of the deployment runs in a container image.

    Args:
        orchestrator: the stack's orchestrator, when the caller has it already.
    """
    from conveyor.stack import Capability, ComponentType

    if (orchestrator or stack.orchestrator).needs_images(deployment):
        return True
    operator = stack.flavor(ComponentType.STEP_OPERATOR)
    return (
        operator is not None
        and Capability.CONTAINER_IMAGE in operator.capabilities
        and any(s.settings.step_operator is not None for s in deployment.pipeline.steps)
    )


class BaseStepOperator(StackComponent):
    """Runs single steps somewhere else (a container, a remote machine) for an orchestrator."""

    def run_step(self, env: RunEnvironment, step_id: str) -> None:
        """Run one step to its end, as ``python -m conveyor.runtime run-step`` does.

        Raises:
            StepFailedError: the step failed.
        """
        raise NotImplementedError


def step_process_env(store_url: str, source_root: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ``python -m conveyor.runtime run-step`` process on this machine."""
    from conveyor._constants import ENV_SOURCE_ROOT, ENV_STORE_URL

    env = dict(os.environ)
    env[ENV_STORE_URL] = store_url
    if source_root is not None:
        env[ENV_SOURCE_ROOT] = str(source_root)
    env.update(extra or {})
    return env
