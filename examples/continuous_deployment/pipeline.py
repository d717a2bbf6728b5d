"""Continuous deployment: train, validate, and deploy the model when it beats the deployed one.

The stack needs an experiment tracker and a model deployer of flavor
``mlflow`` and a data validator of flavor ``pandera`` (see README.md here).
"""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
import pandera.pandas as pa

from conveyor import get_step_context, pipeline, step
from conveyor.stack import ServiceInfo
from conveyor_pandera import pandera_validator

SERVICE = "iris"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class IrisSchema(pa.DataFrameModel):
    """What the training data must look like."""

    sepal_length: float = pa.Field(gt=0, lt=20)
    sepal_width: float = pa.Field(gt=0, lt=20)
    petal_length: float = pa.Field(gt=0, lt=20)
    petal_width: float = pa.Field(gt=0, lt=20)
    species: int = pa.Field(isin=[0, 1, 2])


@step
def load_data() -> pd.DataFrame:
    """The iris data set that scikit-learn ships."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [*FEATURES, "species"]
    return frame


validate = pandera_validator(schema=IrisSchema, on_failure="fail")


@step(experiment_tracker="mlflow")
def train(data: pd.DataFrame, c: float) -> tuple[Annotated[str, "model_uri"], Annotated[float, "accuracy"]]:
    """Fit a logistic regression; log its parameter, accuracy and model to MLflow."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        data[FEATURES], data["species"], test_size=0.3, random_state=7, stratify=data["species"]
    )
    model = LogisticRegression(C=c, max_iter=500).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    mlflow.log_param("C", c)
    mlflow.log_metric("accuracy", accuracy)
    info = mlflow.sklearn.log_model(model, name="model", input_example=x_train.head(2))
    return info.model_uri, accuracy


@step(experiment_tracker="mlflow")
def deploy_if_better(model_uri: str, accuracy: float) -> Annotated[ServiceInfo, "service"]:
    """Deploy the model unless the running service's model is at least as accurate."""
    deployer = get_step_context().model_deployer
    current = deployer.find_service(SERVICE)
    if current is not None and current.status == "running" and current.metadata.get("accuracy", -1.0) >= accuracy:
        print(f"kept {SERVICE}: deployed accuracy {current.metadata['accuracy']:.3f} >= {accuracy:.3f}")
        mlflow.set_tag("deployed", "no")
        return current
    service = deployer.deploy(model_uri, name=SERVICE, replace=True, metadata={"accuracy": accuracy})
    mlflow.set_tag("deployed", service.id)
    print(f"deployed {SERVICE} ({accuracy:.3f}) at {service.url}")
    return service


@pipeline
def continuous_deployment(c: float = 1.0) -> None:
    """Train on validated data and deploy when the model improves."""
    data = load_data()
    validate(data)
    model_uri, accuracy = train(data, c)
    deploy_if_better(model_uri, accuracy)
