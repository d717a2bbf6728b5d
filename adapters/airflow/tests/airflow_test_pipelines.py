"""Pipelines of conveyor-airflow's tests: settings of every kind, and names that try to break out."""

from __future__ import annotations

from typing import Annotated

from conveyor import pipeline, step
from conveyor.alerters import alert_on_failure

# Each payload runs `touch "$CONVEYOR_CANARY"` if any layer (Python, the shell, Jinja)
# executes it; the tests point CONVEYOR_CANARY at a file that must never appear.
PAYLOADS = (
    "x'); __import__('os').system('touch \"$CONVEYOR_CANARY\"'); ('",
    'x"\n__import__("os").system("touch \\"$CONVEYOR_CANARY\\"")\n"',
    '$(touch "$CONVEYOR_CANARY")',
    '`touch $CONVEYOR_CANARY`; "; touch "$CONVEYOR_CANARY"; "',
    "{{ run_id }}{% if True %}{{ dag.dag_id }}{% endif %}{# c #}",
    "--help",
    "a\\'\r\n\t\x0b\x0c\u2028\u0085\N{SNOWMAN} \"\"\"''' #",
    "build.sh",
)

# Names follow core's naming rule (anything else is refused before a DAG is written), so the
# hostile names are the awkward ones the rule allows; the payloads above travel as data.
STEP_NAMES = ("import os", "run.id", "0 dag", "__init__", "build.sh", "ünïcödé naïve", "x" * 200)
HOSTILE_PIPELINE = "evil pipeline.v2 ünï 0"


@step
def load(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step(retries=2, retry_delay=5, timeout=600, environment={"MODE": "fast", "TOKEN": "{{api_token.value}}"})
def square(numbers: list[int]) -> list[int]:
    return [x * x for x in numbers]


@step(settings={"airflow": {"pool": "crunch", "priority_weight": 5, "queue": "cpu"}})
def total(values: list[int]) -> int:
    return sum(values)


@step(resources={"cpu": 0.5, "memory": "1.5Gi"})
def train(values: list[int]) -> float:
    return sum(values) / len(values)


@step(resources={"gpu_count": 1, "gpu_type": "nvidia-tesla-t4"})
def tune(values: list[int]) -> float:
    return max(values) / 2


@pipeline(name="golden")
def golden(n: int = 5) -> None:
    squares = square(load(n))
    total(squares)
    total(squares)


@pipeline(name="containers")
def containers(n: int = 5) -> None:
    numbers = load(n)
    train(numbers)
    tune(numbers).after(total(numbers))


# -- names that must stay data ----------------------------------------------------------------
@step(name=STEP_NAMES[0])
def first(n: int) -> Annotated[str, "text"]:
    return PAYLOADS[1] * n


@step(name=STEP_NAMES[1])
def second(text: str, note: str) -> str:
    return text + note


@step(name=STEP_NAMES[2])
def third(text: str) -> int:
    return len(text)


@step(name=STEP_NAMES[3])
def fourth(size: int) -> int:
    return size + 1


@step(name=STEP_NAMES[4])
def fifth(size: int) -> int:
    return size * 2


@step(name=STEP_NAMES[5], environment={"CONVEYOR_NOTE": PAYLOADS[0]})
def sixth(size: int) -> str:
    import os

    return os.environ["CONVEYOR_NOTE"] + str(size)


@step(name=STEP_NAMES[6])
def seventh(text: str) -> str:
    return text.upper()


@pipeline(name=HOSTILE_PIPELINE)
def hostile(n: int = 2, note: str = PAYLOADS[0] + PAYLOADS[2]) -> None:
    text = second(first(n), note)
    size = third(text)
    seventh(sixth(fifth(fourth(size))))


# -- two names that are one dag_id -------------------------------------------------------------
@step
def one() -> int:
    return 1


@pipeline(name="my pipeline")
def spaced() -> None:
    one()


@pipeline(name="my_pipeline")
def underscored() -> None:
    one()


# -- a step that fails once -------------------------------------------------------------------
@step(retries=1, retry_delay=1)
def wobble() -> int:
    import os

    path = os.environ["CONVEYOR_ATTEMPTS_FILE"]
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        if f.read() == "x":
            raise RuntimeError("the first attempt fails")
    return 1


@step
def after_wobble(x: int) -> int:
    return x + 1


@pipeline(name="flaky")
def flaky() -> None:
    after_wobble(wobble())


# -- a step whose process is killed outright ----------------------------------------------------
@step(on_failure=alert_on_failure, enable_cache=False)
def killed() -> int:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does: no handler, no record
    return 1


@step
def after_killed(x: int) -> int:
    return x


@pipeline(name="killed", on_failure=alert_on_failure)
def killed_pipe() -> None:
    after_killed(killed())
