"""Pipelines for the Prefect integration tests: slow, self-killing and timed-out steps."""

from __future__ import annotations

import os
import signal
import time

from conveyor import pipeline, step


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
