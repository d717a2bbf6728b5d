"""The flavors of conveyor-mlflow: ``experiment_tracker.mlflow`` and ``model_deployer.mlflow``."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel

from conveyor.stack import ComponentType, Flavor, StackComponent

_INSTALL = "pip install ./core ./integrations/mlflow"


class MLflowExperimentTrackerFlavor(Flavor):
    """An active MLflow run inside each step that names the tracker."""

    type = ComponentType.EXPERIMENT_TRACKER
    name = "mlflow"
    description = "MLflow tracking: a nested MLflow run per step run, under one per pipeline run"
    install = _INSTALL

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        from conveyor_mlflow._tracker import MLflowExperimentTrackerConfig

        return MLflowExperimentTrackerConfig

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        from conveyor.exceptions import ConfigError

        clean = super().validate_config(config, component=component)
        uri = str(clean.get("tracking_uri", ""))
        if "@" in uri.split("://", 1)[-1].split("/", 1)[0]:
            raise ConfigError(
                f"experiment-tracker {component!r} (mlflow): the tracking URI holds a credential",
                "give it as --username/--password '{{secret.key}}' references",
            )
        return clean

    def implementation(self) -> builtins.type[StackComponent]:
        from conveyor_mlflow._tracker import MLflowExperimentTracker

        return MLflowExperimentTracker


class MLflowModelDeployerFlavor(Flavor):
    """MLflow's scoring server as managed local services."""

    type = ComponentType.MODEL_DEPLOYER
    name = "mlflow"
    description = "MLflow scoring servers on this machine, managed with `conveyor service`"
    install = _INSTALL

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        from conveyor_mlflow._deployer import MLflowModelDeployerConfig

        return MLflowModelDeployerConfig

    def implementation(self) -> builtins.type[StackComponent]:
        from conveyor_mlflow._deployer import MLflowModelDeployer

        return MLflowModelDeployer
