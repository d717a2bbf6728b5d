"""The ``dagster`` orchestrator: writes definitions files, and executes their job with Dagster."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError, RunStoppedError, StackError, StepFailedError
from conveyor.orchestrators import BaseOrchestrator, DeployedPipeline, write_file_atomically
from conveyor.stack import ComponentType
from conveyor.stores import local_store_folders, url_without_password
from conveyor_dagster._compiler import RUN_KEY_PREFIX, CompiledDefinitions, JobPlan, compile_definitions, plan_job

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext
    from conveyor_dagster._flavor import DagsterOrchestratorConfig

INSTALL = 'pip install ./core "./adapters/dagster[dagster]"'


class DagsterOrchestrator(BaseOrchestrator):
    """Compiles deployments into Dagster definitions files (one job, one op per step).

    ``run`` writes the file into the output folder and executes its job with
    Dagster's multiprocess executor in the instance of the Dagster home,
    waits, and mirrors the result into the conveyor run; a scheduled
    deployment is only written, for a Dagster daemon to run. ``export``
    writes the file anywhere.
    """

    config: DagsterOrchestratorConfig
    _plan_of: tuple[Any, Any, JobPlan] | None = None

    # -- compiling -----------------------------------------------------------------------
    def plan(self, deployment: Deployment) -> JobPlan:
        """:func:`plan_job` of a deployment, computed once per pipeline and schedule (images do not change it)."""
        cached = self._plan_of
        if cached is None or cached[0] is not deployment.pipeline or cached[1] != deployment.schedule:
            plan = plan_job(deployment, self.config)
            cached = self._plan_of = (deployment.pipeline, deployment.schedule, plan)
        return cached[2]

    def _check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Settings Dagster cannot honour fail here, before anything is built or stored.

        Raises:
            ConfigError, CapabilityError: a setting Dagster cannot honour.
            StackError: docker steps, but no image builder and no ``image``.
        """
        plan = self.plan(deployment)
        needs_builder = "docker" in plan.modes and not deployment.images and self.config.image is None
        if needs_builder and ctx.stack.ir.get(ComponentType.IMAGE_BUILDER) is None:
            raise StackError(
                f"steps of pipeline {deployment.pipeline.name!r} run in docker containers on Dagster, "
                f"but stack {ctx.stack.name!r} has no image builder",
                f"add one (conveyor stack update {ctx.stack.name} --image-builder NAME) "
                f"or set the image option of orchestrator {self.name!r}",
            )

    def needs_images(self, deployment: Deployment) -> bool:
        """Only docker-mode ops run in an image; python-mode ops run on the Dagster side's interpreter."""
        return "docker" in self.plan(deployment).modes

    def _images(self, deployment: Deployment, ctx: LaunchContext) -> dict[str, str]:
        if self.config.image is not None:
            return {"": self.config.image}
        return super()._images(deployment, ctx)

    def compile(self, deployment: Deployment, ctx: LaunchContext) -> CompiledDefinitions:
        """The definitions file of a prepared deployment, with this machine's defaults filled in."""
        url = self._store_url(ctx)
        plan = self.plan(deployment)
        mounts: list[str] = []
        if "docker" in plan.modes:
            for folder in local_store_folders(url, _artifact_path(deployment)):
                mounts.append(f"{folder}:{folder}")
                try:  # Docker refuses to bind a folder that does not exist yet
                    Path(folder).mkdir(parents=True, exist_ok=True)
                except OSError:
                    pass  # the ops may run on another machine
        return compile_definitions(
            deployment,
            self.config,
            python=sys.executable,
            store_url=url,
            source_root=str(ctx.source_root) if ctx.source_root is not None else None,
            mounts=mounts,
            plan=plan,
        )

    def _store_url(self, ctx: LaunchContext) -> str:
        """The metadata store's URL as the steps get it: never with a password."""
        url = self.config.store_url or ctx.store.url
        bare = url_without_password(url)
        if bare != url:
            print(
                "conveyor: the Dagster job carries the metadata store URL without its password; give the "
                "Dagster side the password (e.g. PGPASSWORD, a MySQL option file) or set the orchestrator's store_url",
                file=sys.stderr,
            )
        return bare

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        compiled = self.compile(deployment, ctx)
        target = output if output.suffix == ".py" else output / compiled.filename
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create folder {target.parent}: {exc.strerror}", "export to another --output"
            ) from None
        return [write_definitions(target, compiled)]

    # -- running -------------------------------------------------------------------------
    def dagster_home(self, ctx: LaunchContext) -> Path:
        """The Dagster home runs are executed in: the config's, ``$DAGSTER_HOME``, or the repository's."""
        if self.config.dagster_home:
            return Path(self.config.dagster_home).expanduser().resolve()
        if os.environ.get("DAGSTER_HOME"):
            return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
        return (ctx.home or Path(".conveyor").resolve()) / "dagster"

    def output_folder(self, ctx: LaunchContext) -> Path:
        """Where ``run`` writes definitions files: the config's, or ``conveyor/`` in the Dagster home."""
        if self.config.output_folder:
            return Path(self.config.output_folder).expanduser().resolve()
        return self.dagster_home(ctx) / "conveyor"

    def _connect(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """No Dagster, or an output folder that cannot be written, fails before any image is built.

        Raises:
            StackError: Dagster is not installed (and the deployment is to run now).
            ConfigError: the output folder cannot be created or written.
        """
        if deployment.schedule is None:
            import importlib.util

            if importlib.util.find_spec("dagster") is None:
                raise StackError(
                    f"orchestrator {self.name!r} runs pipelines with Dagster, which is not installed",
                    f"run in the root folder of a conveyor clone: {INSTALL}",
                )
        folder = self.output_folder(ctx)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the output folder {folder} of orchestrator {self.name!r}: {exc.strerror}",
                f"choose another: conveyor orchestrator update {self.name} --output-folder PATH",
            ) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the output folder {folder} of orchestrator {self.name!r} is not writable",
                f"choose another: conveyor orchestrator update {self.name} --output-folder PATH",
            )

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | DeployedPipeline:
        compiled = self.compile(deployment, ctx)
        path = write_definitions(self.output_folder(ctx) / compiled.filename, compiled)
        if deployment.schedule is not None:
            print(
                f"conveyor: wrote Dagster job {compiled.job_name!r} with its schedule to {path}; the Dagster daemon "
                f"runs it once a code location loads the file (dagster dev -f {path})",
                file=sys.stderr,
            )
            return DeployedPipeline(
                deployment.pipeline.name,
                deployment.id,
                self.flavor.name,
                where=f"Dagster job {compiled.job_name!r} in {path}",
                trigger=launch_command(path, compiled.job_name, deployment.pipeline.parameters),
                schedule=deployment.schedule,
            )
        return self._execute(path, compiled, deployment, ctx)

    def _execute(self, path: Path, compiled: CompiledDefinitions, deployment: Deployment, ctx: LaunchContext) -> str:
        from conveyor.runtime import settle_after_engine
        from conveyor.stores import RunStatus
        from conveyor_dagster._execute import execute_definitions

        home = self.dagster_home(ctx)
        print(f"conveyor: running Dagster job {compiled.job_name!r} ({path}) in {home}", file=sys.stderr)
        try:
            execution = execute_definitions(path, home)
        except Exception as exc:  # Dagster could not load or start the job
            lines = str(exc).strip().splitlines()
            raise StackError(
                f"Dagster could not run job {compiled.job_name!r}: {lines[0] if lines else type(exc).__name__}",
                f"check the file loads: dagster definitions validate -f {path}",
            ) from None
        if execution.run_id is None:  # interrupted before Dagster made the run
            raise KeyboardInterrupt
        run = self.create_run(
            deployment,
            ctx,
            owned=False,
            run_key=RUN_KEY_PREFIX + execution.run_id,
            orchestrator_run_id=execution.run_id,
        )
        status = settle_after_engine(ctx.store, deployment, run)
        if status == RunStatus.COMPLETED:
            return run.id
        error = ctx.store.get_run(run.id).error or f"Dagster run {execution.run_id} failed"
        hint = f"logs: conveyor run describe {run.name}"
        if execution.interrupted:
            raise RunStoppedError(f"run {run.name!r} was stopped on Dagster: {error}", hint)
        raise StepFailedError(f"run {run.name!r} failed on Dagster: {error}", hint)


def launch_command(path: Path, job_name: str, parameters: dict[str, Any]) -> str:
    """The shell command that launches a run of a definitions file's job.

    With parameters, it gives them as the run's config, the place to change them for that run.
    """
    import json
    import shlex

    argv = ["dagster", "job", "launch", "-f", str(path), "-j", job_name]
    if parameters:
        config = {"resources": {"conveyor": {"config": dict(parameters)}}}
        argv += ["--config-json", json.dumps(config, sort_keys=True, separators=(",", ":"))]
    return shlex.join(argv)


def _artifact_path(deployment: Deployment) -> str:
    store = deployment.stack.get(ComponentType.ARTIFACT_STORE)
    return str(store.config.get("path") or "") if store is not None else ""


def pipeline_of(path: Path) -> str | None:
    """The pipeline a definitions file was written for (its ``CONVEYOR_PIPELINE``), read without running it.

    None for a file conveyor did not write (or cannot be read).
    """
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["CONVEYOR_PIPELINE"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def write_definitions(path: Path, compiled: CompiledDefinitions) -> Path:
    """Write a definitions file atomically, so a code location never loads half of one.

    Raises:
        ConfigError: the file belongs to another pipeline (the names collide as a job
            name) or to no conveyor pipeline, or the folder is not writable.
    """
    if path.exists():
        owner = pipeline_of(path)
        if owner is None:
            raise ConfigError(
                f"{path} exists and was not written by conveyor", "move it away, or give the pipeline another job_name"
            )
        if owner != compiled.pipeline:
            raise ConfigError(
                f"pipelines {owner!r} and {compiled.pipeline!r} are both Dagster job {compiled.job_name!r} ({path})",
                'give one its own job_name: @pipeline(settings={"dagster": {"job_name": "..."}})',
            )
    return write_file_atomically(path, compiled.source.encode("utf-8"), hint="choose a folder this user can write")
