"""The ``airflow`` orchestrator: writes DAG files, and triggers them through Airflow's API."""

from __future__ import annotations

import ast
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError, StackError, StepFailedError
from conveyor.orchestrators import BaseOrchestrator, DeployedPipeline, write_file_atomically
from conveyor.stack import ComponentType
from conveyor.stores import local_store_folders, url_without_password
from conveyor_airflow._compiler import CompiledDag, DagPlan, compile_dag, plan_dag

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext
    from conveyor_airflow._api import AirflowAPI
    from conveyor_airflow._flavor import AirflowOrchestratorConfig

CONTAINER_MODES = frozenset({"docker", "kubernetes_pod"})
HEAD_LINES = 40
"""A DAG file names its pipeline within its first lines (see templates/dag.py.jinja)."""


class AirflowOrchestrator(BaseOrchestrator):
    """Compiles deployments into Airflow DAG files.

    ``run`` writes the DAG into the dags folder; with ``api_url`` set it also
    waits for Airflow to load it, triggers it, and (with ``wait``) follows
    the run to its end. ``export`` writes the DAG file anywhere.
    """

    config: AirflowOrchestratorConfig
    _plan_of: tuple[Any, DagPlan] | None = None

    # -- compiling -----------------------------------------------------------------------
    def plan(self, deployment: Deployment) -> DagPlan:
        """:func:`plan_dag` of a deployment, computed once per pipeline (images do not change it)."""
        cached = self._plan_of
        if cached is None or cached[0] is not deployment.pipeline:
            cached = self._plan_of = (deployment.pipeline, plan_dag(deployment, self.config))
        return cached[1]

    def _check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Settings Airflow cannot honour fail here, before anything is built or stored.

        Raises:
            ConfigError, CapabilityError: a setting Airflow cannot honour.
            StackError: container steps but no image builder and no ``image``.
        """
        plan = self.plan(deployment)
        needs_builder = plan.modes & CONTAINER_MODES and not deployment.images and self.config.image is None
        if needs_builder and ctx.stack.ir.get(ComponentType.IMAGE_BUILDER) is None:
            raise StackError(
                f"steps of pipeline {deployment.pipeline.name!r} run in containers on Airflow, "
                f"but stack {ctx.stack.name!r} has no image builder",
                f"add one (conveyor stack update {ctx.stack.name} --image-builder NAME) "
                f"or set the image option of orchestrator {self.name!r}",
            )

    def needs_images(self, deployment: Deployment) -> bool:
        """Only docker and kubernetes_pod tasks run in an image; python tasks run on the worker."""
        return bool(self.plan(deployment).modes & CONTAINER_MODES)

    def _images(self, deployment: Deployment, ctx: LaunchContext) -> dict[str, str]:
        if self.config.image is not None:
            return {"": self.config.image}
        return super()._images(deployment, ctx)

    def compile(self, deployment: Deployment, ctx: LaunchContext) -> CompiledDag:
        """The DAG file of a prepared deployment, with this machine's defaults filled in."""
        url = self.config.store_url or ctx.store.url
        bare = url_without_password(url)
        if bare != url:
            print(
                "conveyor: the DAG carries the metadata store URL without its password; "
                "give Airflow's workers the password (e.g. PGPASSWORD, a MySQL option file) "
                "or set the orchestrator's store_url",
                file=sys.stderr,
            )
        plan = self.plan(deployment)
        mounts: list[str] = []
        if "docker" in plan.modes:
            for folder in local_store_folders(bare, _artifact_path(deployment)):
                mounts.append(f"{folder}:{folder}")
                try:  # Docker refuses to bind a folder that does not exist yet
                    Path(folder).mkdir(parents=True, exist_ok=True)
                except OSError:
                    pass  # Airflow's workers may be other machines
        return compile_dag(
            deployment,
            self.config,
            python=sys.executable,
            store_url=bare,
            source_root=str(ctx.source_root) if ctx.source_root is not None else None,
            mounts=mounts,
            plan=plan,
        )

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        compiled = self.compile(deployment, ctx)
        target = output if output.suffix == ".py" else output / compiled.filename
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create folder {target.parent}: {exc.strerror}", "export to another --output"
            ) from None
        return [write_dag(target, compiled)]

    # -- running -------------------------------------------------------------------------
    def _connect(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """A bad dags folder fails before any image is built or anything is stored.

        Raises:
            ConfigError: no usable dags folder.
        """
        self._dags_folder()

    def _dags_folder(self) -> Path:
        if not self.config.dags_folder:
            raise ConfigError(
                f"orchestrator {self.name!r} has no dags folder",
                f"set it: conveyor orchestrator update {self.name} --dags-folder PATH",
            )
        folder = Path(self.config.dags_folder).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"the dags folder {folder} of orchestrator {self.name!r} does not exist",
                f"create it, or fix it: conveyor orchestrator update {self.name} --dags-folder PATH",
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the dags folder {folder} of orchestrator {self.name!r} is not writable",
                "give this user write access to it, or choose another folder",
            )
        return folder

    def _api(self) -> AirflowAPI | None:
        if not self.config.api_url:
            return None
        from conveyor_airflow._api import AirflowAPI

        return AirflowAPI(
            self.config.api_url,
            self.config.api_username,
            self.config.api_password,
            timeout=self.config.api_timeout,
            component=self.name,
        )

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | DeployedPipeline:
        folder = self._dags_folder()
        compiled = self.compile(deployment, ctx)
        api = self._api()
        if api is None:
            path = write_dag(folder / compiled.filename, compiled)
            print(
                f"conveyor: wrote DAG {compiled.dag_id!r} to {path}; Airflow runs it from there "
                f"(start it now: airflow dags trigger {compiled.dag_id})",
                file=sys.stderr,
            )
            return self._deployed(deployment, compiled, path)
        with api:
            # Everything that can refuse comes before writing: the dags folder is left as it was.
            api.login()
            for pool in sorted({t.settings.pool for t in self.plan(deployment).tasks if t.settings.pool}):
                if not api.pool_exists(pool):
                    raise ConfigError(
                        f"Airflow at {api.url} has no pool {pool!r}",
                        "create it: airflow pools set NAME SLOTS DESCRIPTION",
                    )
            path = write_dag(folder / compiled.filename, compiled)
            return self._submit(api, compiled, path, deployment, ctx)

    def _deployed(
        self, deployment: Deployment, compiled: CompiledDag, path: Path, url: str | None = None
    ) -> DeployedPipeline:
        where = f"DAG {compiled.dag_id!r} in {path}" + (f" (Airflow at {url})" if url else "")
        return DeployedPipeline(
            deployment.pipeline.name,
            deployment.id,
            self.flavor.name,
            where=where,
            trigger=f"airflow dags trigger {compiled.dag_id}",
            schedule=deployment.schedule,
        )

    def _submit(
        self, api: AirflowAPI, compiled: CompiledDag, path: Path, deployment: Deployment, ctx: LaunchContext
    ) -> str | DeployedPipeline:
        from conveyor.runtime import settle_after_engine, settle_run
        from conveyor.stores import RunStatus

        config = self.config
        details = api.wait_for_dag(
            compiled.dag_id,
            deployment.id,
            compiled.filename,
            timeout=config.parse_timeout,
            poll=min(config.poll_interval, 1.0),
        )
        if config.unpause and details.get("is_paused"):
            api.unpause(compiled.dag_id)
        if deployment.schedule is not None:
            print(f"conveyor: deployed DAG {compiled.dag_id!r} ({path}) on its schedule", file=sys.stderr)
            return self._deployed(deployment, compiled, path, api.url)
        dag_run_id = f"conveyor__{uuid.uuid4().hex}"
        run = self.create_run(
            deployment,
            ctx,
            owned=False,
            run_key=f"airflow:{compiled.dag_id}:{dag_run_id}",
            orchestrator_run_id=dag_run_id,
        )
        try:
            api.trigger(compiled.dag_id, dag_run_id)
        except StackError as exc:
            settle_run(ctx.store, deployment, run.id, RunStatus.FAILED, error=exc.message, stack=ctx.stack)
            raise
        print(
            f"conveyor: triggered DAG {compiled.dag_id!r} as run {dag_run_id} (conveyor run {run.name})",
            file=sys.stderr,
        )
        if not config.wait:
            return run.id
        state = api.wait_for_run(compiled.dag_id, dag_run_id, timeout=config.wait_timeout, poll=config.poll_interval)
        # The tasks settle the run themselves and run its hooks; what they could not (a task killed
        # before it could record anything) is settled here, and its hooks run once.
        if state == "success":
            settle_run(ctx.store, deployment, run.id, RunStatus.COMPLETED, stack=ctx.stack)
        elif state == "failed":
            # A task killed outright (SIGKILL, out of memory) left its step running: the DAG's teardown task
            # has settled the run and run the hooks due; if it could not run (the DAG run went over its
            # dagrun_timeout), the run is settled here, and the hooks still due run, once.
            settle_after_engine(ctx.store, deployment, ctx.store.get_run(run.id))
            error = ctx.store.get_run(run.id).error
            raise StepFailedError(
                f"run {run.name!r} failed on Airflow: {error}", f"logs: conveyor run describe {run.name}"
            )
        else:
            print(
                f"conveyor: DAG run {dag_run_id} is still {state} after {config.wait_timeout:g} s; "
                f"follow it in Airflow",
                file=sys.stderr,
            )
        return run.id


def _artifact_path(deployment: Deployment) -> str:
    store = deployment.stack.get(ComponentType.ARTIFACT_STORE)
    return str(store.config.get("path", "")) if store is not None else ""


def existing_pipeline(path: Path) -> str:
    """The pipeline a DAG file was written for (its ``CONVEYOR_PIPELINE`` line), read without running it.

    Raises:
        ConfigError: the file exists but was not written by conveyor.
    """
    try:
        with open(path, encoding="utf-8") as f:
            head = [f.readline() for _ in range(HEAD_LINES)]
    except (OSError, UnicodeDecodeError):
        head = []
    for line in head:
        if line.startswith("CONVEYOR_PIPELINE = "):
            try:
                value = ast.literal_eval(line.removeprefix("CONVEYOR_PIPELINE = ").strip())
            except (ValueError, SyntaxError):
                break
            if isinstance(value, str):
                return value
    raise ConfigError(
        f"{path} exists and was not written by conveyor", "move it away, or give the pipeline another dag_id"
    )


def write_dag(path: Path, compiled: CompiledDag) -> Path:
    """Write a DAG file atomically: a temporary name Airflow ignores, then a rename.

    Raises:
        ConfigError: the file belongs to another pipeline (the names collide as a
            dag_id) or to no conveyor pipeline, or the folder is not writable.
    """
    if path.exists():
        owner = existing_pipeline(path)
        if owner != compiled.pipeline:
            raise ConfigError(
                f"pipelines {owner!r} and {compiled.pipeline!r} are both DAG {compiled.dag_id!r} ({path})",
                'give one its own dag_id: @pipeline(settings={"airflow": {"dag_id": "..."}})',
            )
    return write_file_atomically(path, compiled.source.encode("utf-8"), hint="choose a folder this user can write")
