"""A pydantic model as a parameter (the BaseStepConfig of older APIs)."""

from typing import Annotated

from pydantic import BaseModel, Field

from conveyor import pipeline, step


class TrainConfig(BaseModel):
    learning_rate: float = Field(0.1, gt=0)
    epochs: int = 3
    name: str = "model"


@step
def train(config: TrainConfig, data: list[float]) -> Annotated[dict[str, float], "model"]:
    weight = 0.0
    for _ in range(config.epochs):
        for x in data:
            weight += config.learning_rate * (x - weight)
    return {"weight": round(weight, 12), "epochs": float(config.epochs)}


@step
def data_points(n: int) -> list[float]:
    return [float(i) for i in range(1, n + 1)]


@pipeline(name="pydantic_param")
def pydantic_param(config: TrainConfig = TrainConfig(), n: int = 5) -> None:
    train(config=config, data=data_points(n))
