"""The ``prefect`` orchestrator: a pipeline run is a Prefect flow run; a schedule is a Prefect deployment."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError, RunStoppedError, StackError, StepFailedError
from conveyor.orchestrators import BaseOrchestrator, LaunchContext
from conveyor.stores import RunStatus
from conveyor_prefect._compile import RUN_TAG_PREFIX, FlowSpec, compile_flow

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor_prefect._flavor import PrefectOrchestratorConfig


def api_url(config: PrefectOrchestratorConfig) -> str | None:
    """The Prefect API this orchestrator talks to: its config, ``PREFECT_API_URL``, or Prefect's profile.

    None means Prefect starts its own temporary server.
    """
    if config.api_url:
        return config.api_url.rstrip("/")
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def check_server(url: str, timeout: float = 3.0) -> None:
    """Fail fast when the Prefect API at ``url`` does not answer its health check.

    Raises:
        StackError: no answer within ``timeout`` seconds, or an error status.
    """
    import httpx

    hint = "start one: prefect server start --host 127.0.0.1, or set api_url / PREFECT_API_URL"
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StackError(f"the Prefect API at {url} does not answer ({reason})", hint) from None
    if response.status_code != 200:
        raise StackError(f"the Prefect API at {url} answered its health check with HTTP {response.status_code}", hint)


@contextlib.contextmanager
def prefect_api(url: str | None) -> Iterator[None]:
    """Point Prefect at ``url`` for the duration (no change when None)."""
    if url is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


class PrefectOrchestrator(BaseOrchestrator):
    """Runs a pipeline now as a Prefect flow run, or deploys it to Prefect when it has a schedule."""

    config: PrefectOrchestratorConfig
    prefect_deployment_id: str | None = None
    """Id of the Prefect deployment the last scheduled submission created or updated."""

    def compile(self, deployment: Deployment) -> FlowSpec:
        """The Prefect flow this deployment becomes (see :func:`compile_flow`)."""
        return compile_flow(deployment, self.config)

    def needs_images(self, deployment: Deployment) -> bool:
        """Whether the deployment needs the pipeline's image here.

        ``step_mode: container`` runs every step in it; a deployment in a
        ``docker`` work pool runs the whole flow in it.
        """
        return self.config.step_mode == "container" or (
            deployment.schedule is not None and self.config.work_pool_type == "docker"
        )

    def _check(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """Check what Prefect cannot honour before anything is stored; images are built by the base class.

        Raises:
            ConfigError, CapabilityError: see :func:`compile_flow`.
            StackError: steps or the flow run in the pipeline's image, but the
                stack cannot build it or conveyor-docker is missing.
        """
        self.compile(deployment)
        docker_pool = deployment.schedule is not None and self.config.work_pool_type == "docker"
        if docker_pool and self.config.step_mode == "container":
            raise ConfigError(
                f"orchestrator {self.name!r} (prefect): a docker work pool runs the flow in the pipeline's image, "
                "where steps cannot start containers of their own (step_mode: container)",
                f"use step_mode in_process or subprocess: conveyor orchestrator update {self.name} --step-mode in_process",
            )
        if not self.needs_images(deployment) or deployment.images:
            return
        from conveyor.stack import ComponentType

        what = "its flow runs" if docker_pool else "steps run"
        for needed in (ComponentType.IMAGE_BUILDER, ComponentType.CONTAINER_REGISTRY):
            if ctx.stack.ir.get(needed) is None:
                kind = ComponentType.cli_name(needed)
                raise StackError(
                    f"stack {ctx.stack.name!r} has no {kind}, but {what} in the pipeline's image "
                    f"(prefect orchestrator {self.name!r})",
                    f"add one: conveyor stack update {ctx.stack.name} --{kind} NAME",
                )
        import importlib.util

        if importlib.util.find_spec("conveyor_docker") is None:
            raise StackError(
                f"{what} in the pipeline's image, which needs conveyor-docker (not installed)",
                'run: pip install "conveyor-prefect[docker]"',
            )

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        spec = self.compile(deployment)
        output.mkdir(parents=True, exist_ok=True)
        path = output / f"{spec.flow_name}.prefect.json"
        from conveyor.ir import canonical_json

        path.write_text(canonical_json(spec.model_dump(mode="json")) + "\n")
        return [path]

    def _server(self) -> str | None:
        url = api_url(self.config)
        if url is not None:
            check_server(url, self.config.server_timeout)
        return url

    # -- run now ---------------------------------------------------------------------
    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str | None:
        spec = self.compile(deployment)
        if deployment.schedule is not None:
            self._deploy(spec, deployment, ctx)
            return None
        url = self._server()
        from prefect import tags

        from conveyor.runtime import RunEnvironment
        from conveyor_prefect._flow import LocalLaunch, pipeline_flow, register_launch, unregister_launch

        run = self.create_run(deployment, ctx, owned=True)
        env = RunEnvironment(store=ctx.store, stack=ctx.stack, deployment=deployment, run=run)
        register_launch(LocalLaunch(env=env, source_root=ctx.source_root))
        state: Any = None
        try:
            with prefect_api(url), tags(*spec.tags, f"{RUN_TAG_PREFIX}{run.id}"):
                flow = pipeline_flow(spec, run.name)
                state = flow(deployment_id=deployment.id, conveyor_run_id=run.id, return_state=True)
        except BaseException as exc:
            ctx.store.settle_run(run.id, RunStatus.STOPPED, error=f"stopped ({type(exc).__name__})")
            raise
        finally:
            unregister_launch(run.id)
        record = ctx.store.get_run(run.id)
        if record.status == RunStatus.RUNNING:
            # The flow run ended before its driver could record anything (a crash in Prefect).
            message = (
                f"Prefect flow run ended {state.name}: {state.message}"
                if state is not None
                else "Prefect flow run crashed"
            )
            ctx.store.settle_run(run.id, RunStatus.FAILED, error=message)
            record = ctx.store.get_run(run.id)
        where = f"run {record.name!r}; Prefect flow run {record.orchestrator_run_id}"
        if record.status == RunStatus.FAILED:
            raise StepFailedError(f"{record.error} ({where}; logs: conveyor run describe {record.name})")
        if record.status == RunStatus.STOPPED:
            raise RunStoppedError(f"{record.error} ({where})")
        return run.id

    # -- deploy on a schedule --------------------------------------------------------
    def _deploy(self, spec: FlowSpec, deployment: Deployment, ctx: LaunchContext) -> None:
        url = self._server()
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.deployments.runner import EntrypointType
        from prefect.exceptions import ObjectNotFound
        from prefect.schedules import Cron, Interval

        from conveyor.constants import ENV_SOURCE_ROOT, ENV_STORE_URL
        from conveyor_prefect._flow import pipeline_flow

        assert spec.schedule is not None
        anchor = spec.schedule.get("anchor_date")
        if "cron" in spec.schedule:
            schedule = Cron(spec.schedule["cron"], timezone="UTC")
        else:
            from datetime import datetime, timedelta

            schedule = Interval(
                timedelta(seconds=spec.schedule["interval"]),
                anchor_date=datetime.fromisoformat(anchor) if anchor else None,
                timezone="UTC",
            )
        variables: dict[str, Any] = {}
        env: dict[str, str] = {}
        parameters: dict[str, Any] = {"deployment_id": deployment.id}
        import sqlalchemy as sa

        if sa.make_url(ctx.store.url).password is None:
            # A URL with a password stays out of Prefect: the worker's environment must provide it.
            env[ENV_STORE_URL] = ctx.store.url
        else:
            where = (
                "the work pool's job template (env)" if spec.work_pool_type == "docker" else "the worker's environment"
            )
            print(f"conveyor: {where} must set {ENV_STORE_URL} to the metadata store URL", file=sys.stderr)
        if spec.work_pool_type == "docker":
            image = deployment.image_for("")
            parameters["image"] = image
            variables.update(_docker_job_variables(image, ctx))
            env.update(variables.pop("env"))
        else:
            if ctx.source_root is not None:
                env[ENV_SOURCE_ROOT] = str(ctx.source_root)
                variables["working_dir"] = str(ctx.source_root)
        variables["env"] = env
        with prefect_api(url):
            with get_client(sync_client=True) as client:
                try:
                    client.read_work_pool(spec.work_pool)
                except ObjectNotFound:
                    client.create_work_pool(
                        WorkPoolCreate(
                            name=spec.work_pool,
                            type=spec.work_pool_type,
                            base_job_template=_job_template(spec.work_pool_type),
                        )
                    )
            flow = pipeline_flow(spec)
            runner_deployment = flow.to_deployment(
                name=spec.deployment_name,
                schedules=[schedule],
                parameters=parameters,
                tags=list(spec.tags),
                description=f"conveyor pipeline {spec.flow_name} (deployment {deployment.id})",
                work_pool_name=spec.work_pool,
                job_variables=variables,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
            self.prefect_deployment_id = str(runner_deployment.apply())
        print(
            f"conveyor: Prefect deployment {spec.flow_name}/{spec.deployment_name} ({self.prefect_deployment_id}) "
            f"runs on {_describe(spec.schedule)} in work pool {spec.work_pool!r}; "
            f"start a worker: prefect worker start --pool {spec.work_pool}",
            file=sys.stderr,
        )


def _job_template(pool_type: str) -> dict[str, Any]:
    """The default job template of a work pool type, from its worker installed here.

    Empty when that worker is not installed here: a worker of the pool fills
    it in when it starts (Prefect's server does that on the worker's first call).
    """
    from prefect.workers.base import BaseWorker

    worker = BaseWorker.get_worker_class_from_type(pool_type)
    return dict(worker.get_default_base_job_template()) if worker is not None else {}


FLOW_HOSTNAME = "conveyor-flow"
"""Hostname of flow containers: with host networking they would otherwise share this machine's."""


def _docker_job_variables(image: str | None, ctx: LaunchContext) -> dict[str, Any]:
    """Job variables of a docker work pool: the pipeline's image, host network, local stores mounted.

    The flow's process in the container is not judged by processes here (nor
    does it judge theirs): its PIDs are not this machine's.
    """
    from conveyor.constants import ENV_STEP_ENTRYPOINT
    from conveyor_docker import store_mounts

    mounts = store_mounts(ctx.store.url, ctx.stack.artifact_store.path)
    return {
        "image": image,
        "network_mode": "host",
        "auto_remove": True,
        "volumes": [f"{m}:{m}" for m in mounts],
        "container_create_kwargs": {"hostname": FLOW_HOSTNAME},
        "env": {ENV_STEP_ENTRYPOINT: "1"},
    }


def _describe(schedule: dict[str, Any]) -> str:
    if "cron" in schedule:
        return f"cron {schedule['cron']!r}"
    return f"every {schedule['interval']:g} s"
