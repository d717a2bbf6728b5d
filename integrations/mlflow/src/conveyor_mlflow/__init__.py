"""MLflow for conveyor: an experiment tracker and a model deployer.

``@step(experiment_tracker="mlflow")`` makes an MLflow run active inside the
step; the ``mlflow`` model deployer serves MLflow models as services that
``conveyor service`` manages.
"""

from conveyor_mlflow._deployer import MLflowModelDeployer, MLflowModelDeployerConfig, ServiceError
from conveyor_mlflow._flavors import MLflowExperimentTrackerFlavor, MLflowModelDeployerFlavor
from conveyor_mlflow._tracker import (
    MLflowExperimentTracker,
    MLflowExperimentTrackerConfig,
    MLflowTrackerError,
    run_url,
)

__all__ = [
    "MLflowExperimentTracker",
    "MLflowExperimentTrackerConfig",
    "MLflowExperimentTrackerFlavor",
    "MLflowModelDeployer",
    "MLflowModelDeployerConfig",
    "MLflowModelDeployerFlavor",
    "MLflowTrackerError",
    "ServiceError",
    "run_url",
]
