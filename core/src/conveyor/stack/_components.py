"""Base classes of the component types that steps use while they run.

An experiment tracker or a data validator is named by a step
(``@step(experiment_tracker="mlflow")``); the step entrypoint enters its
:meth:`StepComponent.step_scope` around the step's body, on every engine. A
model deployer serves models as long-lived services that ``conveyor service``
manages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.stack._stack import StackComponent


class StepComponent(StackComponent):
    """A component that takes part in the runs of the steps that name it."""

    @contextlib.contextmanager
    def step_scope(self, context: Any) -> Iterator[None]:
        """Wrap one attempt of a step's body (the default does nothing).

        Args:
            context: the :class:`~conveyor.runtime.StepContext` of the attempt.

        Raises:
            ConveyorError: the component cannot serve the step (an unreachable
                server, a wrong credential); raised before the body runs.
        """
        yield


class ExperimentTracker(StepComponent):
    """Records parameters, metrics and models of the steps that name it."""


class DataValidator(StepComponent):
    """Checks data against a schema in the steps that name it."""

    def validate(self, data: Any, schema: Any, **options: Any) -> Any:
        """Validate ``data`` against ``schema``; return the flavor's report."""
        raise NotImplementedError


class ServiceStatus:
    """What a service is doing (``conveyor service list`` shows it)."""

    RUNNING = "running"
    STOPPED = "stopped"
    """Not running: stopped by a user, or its process died."""
    STARTING = "starting"
    """Its process runs but its health endpoint does not answer yet."""


class ServiceInfo(BaseModel):
    """A model service as recorded by its model deployer: what ``deploy`` returns and ``conveyor service`` shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    flavor: str
    status: str
    model_uri: str
    url: str
    """Where predictions are asked for (``http://127.0.0.1:PORT/invocations``)."""
    health_url: str
    host: str
    port: int
    pid: int | None = None
    log_file: str
    created: str
    config: dict[str, Any] = {}
    """Everything needed to start the service again as it was."""
    metadata: dict[str, Any] = {}
    """What the deploying step recorded with it (metrics such as accuracy, the run that deployed it)."""


class ModelDeployer(StackComponent):
    """Serves models as managed, long-lived services."""

    def deploy(self, model_uri: str, *, name: str, replace: bool = True, **options: Any) -> ServiceInfo:
        """Serve a model as service ``name``; with ``replace`` an older service of that name
        is stopped only after the new one answers its health check."""
        raise NotImplementedError

    def list_services(self) -> list[ServiceInfo]:
        """Every service this deployer manages, with its current status."""
        raise NotImplementedError

    def get_service(self, ref: str) -> ServiceInfo:
        """A service by id, id prefix or name.

        Raises:
            NotFoundError: no such service.
        """
        raise NotImplementedError

    def find_service(self, name: str) -> ServiceInfo | None:
        """The service deployed under ``name``, or None."""
        for service in self.list_services():
            if service.name == name:
                return service
        return None

    def stop_service(self, ref: str) -> ServiceInfo:
        """Stop a service's process; its record stays."""
        raise NotImplementedError

    def start_service(self, ref: str) -> ServiceInfo:
        """Start a stopped service again with its recorded configuration."""
        raise NotImplementedError

    def delete_service(self, ref: str) -> None:
        """Stop a service and forget it."""
        raise NotImplementedError

    def service_logs(self, ref: str) -> str:
        """The text a service's process wrote."""
        raise NotImplementedError
