"""Pipelines for the Prefect integration tests: slow, self-killing and timed-out steps; a model and its users."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated

from conveyor import Model, log_metadata, pipeline, step


@step
def first() -> int:
    return 1


@step
def nap(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x + 1


@step
def after_nap(x: int) -> int:
    return x * 10


@pipeline(name="slow")
def slow(seconds: float = 30.0) -> None:
    after_nap(nap(first(), seconds))


@step
def die(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@pipeline(name="killed")
def killed() -> None:
    after_nap(die(first()))


@step
def load(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step
def train(numbers: list[int]) -> Annotated[dict, "model"]:
    log_metadata({"accuracy": 0.9, "rows": len(numbers)})
    return {"weights": sum(numbers)}


@pipeline(name="churn_training", model=Model(name="churn", tags=["tabular"]))
def churn_training(n: int = 4) -> None:
    train(load(n))


@step
def predict(model: dict, x: int) -> int:
    return model["weights"] * x


@pipeline(name="churn_scoring")
def churn_scoring(model: str = "churn@production") -> None:
    predict(model, 3)
