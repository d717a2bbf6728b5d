"""The ``kubeflow`` orchestrator: compiles KFP v2 specs and submits them with ``kfp.Client``."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError, RunStoppedError, StepFailedError
from conveyor.orchestrators import BaseOrchestrator, DeployedPipeline, write_file_atomically
from conveyor.runtime import make_run_name
from conveyor.stack import ComponentType
from conveyor_kubeflow._compiler import CompiledPipeline, compile_pipeline

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext
    from conveyor_kubeflow._client import KfpConnection
    from conveyor_kubeflow._flavor import KubeflowOrchestratorConfig

STORE_ENV = "CONVEYOR_STORE_URL"
# An image reference of the right shape, for checking settings before any image is built.
_CHECK_IMAGE = "registry.invalid/conveyor-check@sha256:" + "0" * 64


class KubeflowOrchestrator(BaseOrchestrator):
    """Compiles deployments into KFP v2 pipeline specs.

    ``export`` writes the spec; ``run`` builds and pushes the image, then
    submits the spec to the configured KFP host (a run, or a recurring run
    for a schedule) or, with no host, writes it for the user to upload.
    """

    config: KubeflowOrchestratorConfig

    # -- compiling -----------------------------------------------------------------------
    def _check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Compile once with a stand-in image: settings errors do not wait for a minutes-long image build.

        Raises:
            ConfigError, CapabilityError: a setting KFP cannot honour, a store pods cannot reach,
                a spec over KFP's size limit.
        """
        if not deployment.images:
            compile_pipeline(
                deployment.model_copy(update={"images": {"": _CHECK_IMAGE}}),
                self.config,
                store_url=self.store_url(ctx, deployment, quiet=True),
            )

    def store_url(self, ctx: LaunchContext, deployment: Deployment, *, quiet: bool = False) -> str | None:
        """The metadata store URL the step pods get, without password (None: a secret gives it).

        Raises:
            ConfigError: a store pods cannot reach (a SQLite file, a local artifact folder).
        """
        _check_artifact_store(deployment)
        if STORE_ENV in self.config.secret_env:
            return None
        if self.config.store_url:
            return self.config.store_url
        import sqlalchemy as sa

        url = sa.make_url(ctx.store.url)
        if url.get_backend_name() == "sqlite":
            raise ConfigError(
                f"the metadata store is a SQLite file on this machine ({url.database}), which KFP pods cannot reach",
                f"use a MySQL/PostgreSQL store (CONVEYOR_STORE_URL), or set the store_url or secret_env of "
                f"orchestrator {self.name!r}",
            )
        if url.password is not None:
            if not quiet:
                print(
                    "conveyor: the KFP spec carries the metadata store URL without its password; give the pods "
                    f'the whole URL from a Kubernetes secret: secret_env {{"{STORE_ENV}": "SECRET:KEY"}}',
                    file=sys.stderr,
                )
            url = sa.URL.create(
                url.drivername,
                username=url.username,
                host=url.host,
                port=url.port,
                database=url.database,
                query=url.query,
            )
        return url.render_as_string(hide_password=False)

    def compile(self, deployment: Deployment, ctx: LaunchContext) -> CompiledPipeline:
        """The KFP spec of a prepared deployment."""
        return compile_pipeline(deployment, self.config, store_url=self.store_url(ctx, deployment))

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        compiled = self.compile(deployment, ctx)
        target = output if output.suffix in (".yaml", ".yml") else output / compiled.filename
        return [write_spec(target, compiled)]

    # -- running -------------------------------------------------------------------------
    def _connect(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Reach the KFP host before the image is built.

        Raises:
            StackError: the host cannot be reached or refuses the credentials.
        """
        self._connection = None
        if self.config.host:
            from conveyor_kubeflow._client import KfpConnection

            self._connection = KfpConnection(self.config, self.name)
            self._connection.check()

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | DeployedPipeline:
        compiled = self.compile(deployment, ctx)
        connection: KfpConnection | None = getattr(self, "_connection", None)
        if connection is None:
            folder = Path(self.config.output_dir or ".")
            path = write_spec(folder / compiled.filename, compiled)
            print(
                f"conveyor: wrote the KFP spec of pipeline {deployment.pipeline.name!r} to {path}; no KFP host "
                f"is set, so nothing was submitted (set one: conveyor orchestrator update {self.name} --host URL)",
                file=sys.stderr,
            )
            return DeployedPipeline(
                deployment.pipeline.name,
                deployment.id,
                self.flavor.name,
                where=f"KFP pipeline spec {path}",
                trigger=f"upload {path} in the KFP UI, or set a host (conveyor orchestrator update {self.name} "
                "--host URL) and call the pipeline again",
                schedule=deployment.schedule,
            )
        experiment = self.config.experiment or deployment.pipeline.name
        with tempfile.TemporaryDirectory(prefix="conveyor-kfp-") as tmp:
            package = write_spec(Path(tmp) / compiled.filename, compiled)
            if deployment.schedule is not None:
                name = f"{deployment.pipeline.name} ({deployment.id[:12]})"
                recurring = connection.submit_recurring_run(
                    str(package), name=name, experiment=experiment, schedule=deployment.schedule
                )
                print(
                    f"conveyor: created KFP recurring run {recurring} of pipeline {deployment.pipeline.name!r} "
                    f"in experiment {experiment!r}",
                    file=sys.stderr,
                )
                return DeployedPipeline(
                    deployment.pipeline.name,
                    deployment.id,
                    self.flavor.name,
                    where=f"KFP recurring run {recurring} in experiment {experiment!r} at {connection.host}",
                    schedule=deployment.schedule,
                )
            run_name = make_run_name(deployment.pipeline.name, deployment.run_name)
            kfp_run_id = connection.submit_run(str(package), run_name=run_name, experiment=experiment)
        run = self._record_run(deployment, ctx, run_name, kfp_run_id)
        print(f"conveyor: submitted KFP run {kfp_run_id} (conveyor run {run.name})", file=sys.stderr)
        if self.config.wait:
            self._follow(connection, kfp_run_id, run.id, run.name, ctx, deployment)
        return run.id

    def _record_run(self, deployment: Deployment, ctx: LaunchContext, run_name: str, kfp_run_id: str) -> Any:
        # The first step to start may have made the run already: the key is the same.
        return self.create_run(
            deployment,
            ctx,
            owned=False,
            run_key=f"kfp:{kfp_run_id}",
            name=run_name,
            orchestrator_run_id=kfp_run_id,
        )

    def _follow(
        self,
        connection: KfpConnection,
        kfp_run_id: str,
        run_id: str,
        run_name: str,
        ctx: LaunchContext,
        deployment: Deployment,
    ) -> None:
        """Wait for the KFP run and mirror its end into the conveyor run."""
        from conveyor.stores import RunStatus
        from conveyor_kubeflow._client import FINISHED_STATES

        deadline = None if self.config.wait_timeout is None else time.monotonic() + self.config.wait_timeout
        while True:
            state, message = connection.run_state(kfp_run_id)
            if state in FINISHED_STATES:
                break
            if deadline is not None and time.monotonic() >= deadline:
                print(
                    f"conveyor: KFP run {kfp_run_id} is still {state} after {self.config.wait_timeout:g} s; "
                    "follow it in KFP's UI",
                    file=sys.stderr,
                )
                return
            time.sleep(self.config.poll_interval)
        from conveyor.runtime import settle_run

        # The exit task settled the run and ran its hooks already; whatever it could not is done
        # here, and no hook runs twice.
        store = ctx.store
        if state in ("SUCCEEDED", "SKIPPED"):
            settle_run(store, deployment, run_id, RunStatus.COMPLETED, stack=ctx.stack)
            return
        if state == "CANCELED":
            store.settle_run(run_id, RunStatus.STOPPED, error=f"KFP run {kfp_run_id} was cancelled")
            raise RunStoppedError(f"run {run_name!r} was cancelled in KFP")
        settle_run(
            store,
            deployment,
            run_id,
            RunStatus.FAILED,
            error=f"KFP run {kfp_run_id} failed" + (f": {message}" if message else ""),
            stack=ctx.stack,
        )
        error = store.get_run(run_id).error
        raise StepFailedError(f"run {run_name!r} failed on KFP: {error}", f"logs: conveyor run describe {run_name}")


def _check_artifact_store(deployment: Deployment) -> None:
    spec = deployment.stack.get(ComponentType.ARTIFACT_STORE)
    if spec is None:
        return
    path = str(spec.config.get("path", ""))
    if spec.flavor == "local" or "://" not in path or path.startswith(("file://", "memory://")):
        raise ConfigError(
            f"artifact store {spec.name!r} keeps artifacts at {path or 'a folder'} on this machine, "
            "which KFP pods cannot reach",
            "use an object store the pods can reach (artifact-store flavor s3, or fsspec with gcs://, az://...)",
        )


def write_spec(path: Path, compiled: CompiledPipeline) -> Path:
    """Write a spec atomically (a temporary name, then a rename).

    Raises:
        ConfigError: the folder cannot be created or written.
    """
    return write_file_atomically(path, compiled.text.encode("utf-8"), hint="choose another --output", parents=True)
