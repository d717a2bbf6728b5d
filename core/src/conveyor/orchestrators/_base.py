"""The orchestrator base class: decides *where* and *when* steps run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.stack import StackComponent

if TYPE_CHECKING:
    from conveyor.ir import Deployment, Schedule
    from conveyor.runtime import RunEnvironment
    from conveyor.stack import Stack
    from conveyor.stores import MetadataStore, RunRecord


@dataclass
class LaunchContext:
    """What an orchestrator gets besides the deployment.

    Attributes:
        store: the metadata store.
        stack: the stack the deployment runs on.
        source_root: the folder of the user's code.
        home: a folder of this repository (its ``.conveyor/``) where an
            orchestrator may keep its engine's state on this machine.
        run_ids: the runs :meth:`BaseOrchestrator.create_run` recorded for
            this launch, so that a launch that fails midway knows whether a
            run exists to settle.
    """

    store: MetadataStore
    stack: Stack
    source_root: Path | None = None
    home: Path | None = None
    run_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeployedPipeline:
    """What calling a pipeline gives on a stack whose engine runs it later, not now.

    An orchestrator that writes what its engine reads (a DAG file, a spec) or
    deploys a pipeline on a schedule returns one instead of a run id, so that
    ``run = my_pipeline()`` is never None. ``status`` is ``"deployed"`` for
    scripts that check a run's status.

    Attributes:
        pipeline: the pipeline's name.
        deployment_id: the stored deployment; steps load it by this id.
        engine: the orchestrator's flavor (``airflow``, ``kubeflow``, ...).
        where: the file written or the engine's address and object, when known.
        trigger: how to start a run of it, when it does not start on its own.
        schedule: the schedule it runs on, if any.
    """

    pipeline: str
    deployment_id: str
    engine: str
    where: str | None = None
    trigger: str | None = None
    schedule: Schedule | None = None
    status: str = "deployed"

    def __str__(self) -> str:
        text = f"pipeline {self.pipeline!r} deployed to {self.engine}"
        if self.where:
            text += f" ({self.where})"
        if self.schedule is not None:
            text += " on its schedule"
        if self.trigger:
            text += f"; start a run: {self.trigger}"
        return text


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


class BaseOrchestrator(StackComponent):
    """Runs or submits a deployment: decides *where* and *when* steps run.

    :meth:`run` and :meth:`export` are template methods that subclasses do
    not override. They call, in order:

    1. :meth:`_check`: pure compile-time checks (settings the engine cannot
       honour), then the stack's capability checks; nothing is built or stored yet;
    2. :meth:`_connect` (``run`` only): reach the engine, so an unreachable
       engine or a refused credential fails before any image is built;
    3. :meth:`prepare`: images (:meth:`_images`, when :meth:`needs_images`), then
       the deployment is stored;
    4. :meth:`_run` or :meth:`_export`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("run", "export", "prepare"):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__qualname__} overrides BaseOrchestrator.{name}(); implement the _check, _connect, "
                    f"_images, _run or _export hooks instead"
                )

    def run(self, deployment: Deployment, ctx: LaunchContext) -> str | DeployedPipeline:
        """Run (or submit) a deployment; returns the id of the conveyor run.

        Orchestrators that deploy a scheduled pipeline instead of running it,
        or only write what their engine reads, return a :class:`DeployedPipeline`
        (their :meth:`_run` returns one, or None for a bare one).

        Raises:
            StackError, CapabilityError, ConfigError: the stack cannot run the pipeline as asked.
            StepFailedError: a step failed (orchestrators that wait for the run).
        """
        self.check(deployment, ctx)
        self._connect(deployment, ctx)
        deployment = self.prepare(deployment, ctx)
        started = time.perf_counter()
        run_id = self._run(deployment, ctx)
        self.submit_seconds = time.perf_counter() - started
        if run_id is None:
            return DeployedPipeline(
                deployment.pipeline.name, deployment.id, self.flavor.name, schedule=deployment.schedule
            )
        return run_id

    def export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        """Write what the engine reads (a DAG file, a pipeline spec) without running it.

        Returns the files written.

        Raises:
            StackError: this orchestrator has nothing to export.
        """
        if type(self)._export is BaseOrchestrator._export:
            self._export(deployment, ctx, output)  # raises, before anything is stored
        self.check(deployment, ctx)
        deployment = self.prepare(deployment, ctx)
        return self._export(deployment, ctx, output)

    def check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Everything that can be known wrong before building or storing anything.

        Raises:
            StackError, CapabilityError, ConfigError: what the stack or the engine cannot honour.
        """
        from conveyor.stack import report_unread_settings

        # The engine's own checks first: they say more than the stack's generic capability checks.
        self._check(deployment, ctx)
        ctx.stack.validate(deployment.pipeline, deployment.schedule)
        report_unread_settings(deployment.pipeline, ctx.stack)

    def prepare(self, deployment: Deployment, ctx: LaunchContext) -> Deployment:
        """Give the deployment its images where its steps run in containers, and store it."""
        if not deployment.images and needs_images(deployment, ctx.stack, self):
            deployment = deployment.model_copy(update={"images": self._images(deployment, ctx)})
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

    # -- hooks -----------------------------------------------------------------------
    def _check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Engine-specific compile-time checks; must not build, store or contact anything."""

    def _connect(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Reach the engine before anything is built (``run`` only); raise a one-line StackError if it cannot."""

    def _images(self, deployment: Deployment, ctx: LaunchContext) -> dict[str, str]:
        """The images of a deployment whose steps run in containers: ``{step id or "": image}``.

        The default asks the stack's image builder to build and push them.
        """
        from conveyor.stack import ComponentType

        builder = ctx.stack.component(ComponentType.IMAGE_BUILDER)
        images: dict[str, str] = builder.build_images(deployment, ctx)
        return images

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | DeployedPipeline | None:
        """Run the deployment and return its run id, or deploy it and say where (see :meth:`run`)."""
        raise NotImplementedError

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        from conveyor.exceptions import StackError
        from conveyor.stack import engine_flavors

        raise StackError(
            f"the {self.flavor.name!r} orchestrator runs pipelines directly and has nothing to export",
            f"export with a stack whose orchestrator compiles for an engine ({engine_flavors()})",
        )

    # -- runs ------------------------------------------------------------------------
    def create_run(
        self, deployment: Deployment, ctx: LaunchContext, *, owned: bool, run_key: str | None = None, **values: Any
    ) -> RunRecord:
        """Record a new run of the deployment (or join the run of an engine's ``run_key``).

        Args:
            owned: this process drives the run, so a run left ``running`` when
                it dies is marked failed later.
            run_key: the engine's run identifier, when steps may create the run first.
            **values: other run fields (``orchestrator_run_id``, ...).
        """
        from conveyor.runtime import start_run

        run = start_run(ctx.store, deployment, run_key=run_key, owned=owned, source_root=ctx.source_root, **values)
        ctx.run_ids.append(run.id)
        return run


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


def step_process_env(
    store: MetadataStore, source_root: Path | None, extra: dict[str, str] | None = None, *, run_id: str | None = None
) -> dict[str, str]:
    """Environment for a ``python -m conveyor.runtime run-step`` process on this machine.

    Args:
        run_id: the run the process records into; a REST store hands the
            process a token scoped to it (and nothing that reaches further:
            database URL, secrets key and the user's own credential are left out).
    """
    from conveyor.constants import ENV_API_KEY, ENV_PROFILE, ENV_SERVER, ENV_SOURCE_ROOT, ENV_STORE_URL
    from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE

    env = dict(os.environ)
    child = store.child_environment(run_id)
    if ENV_SERVER in child:
        for name in (ENV_STORE_URL, ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_PROFILE, ENV_API_KEY):
            env.pop(name, None)
    env.update(child)
    if source_root is not None:
        env[ENV_SOURCE_ROOT] = str(source_root)
    env.update(extra or {})
    return env
