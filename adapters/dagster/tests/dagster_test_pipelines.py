"""Pipelines of conveyor-dagster's tests: settings of every kind, names Dagster refuses, hostile values."""

from __future__ import annotations

import os
import time
from typing import Annotated

from conveyor import pipeline, step

# Each payload runs `touch "$CONVEYOR_CANARY"` if any layer (Python, a shell, a template)
# executes it; the tests point CONVEYOR_CANARY at a file that must never appear.
PAYLOADS = (
    "x'); __import__('os').system('touch \"$CONVEYOR_CANARY\"'); ('",
    'x"\n__import__("os").system("touch \\"$CONVEYOR_CANARY\\"")\n"',
    '$(touch "$CONVEYOR_CANARY")',
    '`touch $CONVEYOR_CANARY`; "; touch "$CONVEYOR_CANARY"; "',
    "{{ run_id }}{% if True %}{{ job_name }}{% endif %}${CONVEYOR_CANARY}",
    "--help",
    "a\\'\r\n\t\x0b\x0c\u2028\u0085\N{SNOWMAN} \"\"\"''' #",
    '"""\n__import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\')\n"""',
)


@step
def load(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step(
    retries=2,
    retry_delay=5,
    environment={"MODE": "fast", "TOKEN": "{{api_token.value}}"},
    settings={"dagster": {"retry_backoff": "exponential", "retry_jitter": "full", "tags": {"team": "ml"}}},
)
def square(numbers: list[int]) -> list[int]:
    return [x * x for x in numbers]


@step(settings={"dagster": {"pool": "crunch", "description": "adds the squares up"}})
def total(values: list[int]) -> int:
    return sum(values)


@pipeline(name="golden", settings={"dagster": {"tags": {"owner": "data-team"}, "max_concurrent": 4}})
def golden(n: int = 5, label: str = "squares") -> None:
    squares = square(load(n))
    total(squares)
    total(squares)


# -- names Dagster refuses as they are ---------------------------------------------------------
@step(name="load data")
def load_data(n: int) -> Annotated[list[int], "the numbers"]:
    return list(range(n))


@step(name="input")
def keyword(values: list[int]) -> int:
    return len(values)


@step(name="naïve.step-1")
def naive(values: list[int]) -> int:
    return sum(values)


@pipeline(name="my pipeline v2.0")
def renamed(n: int = 3) -> None:
    values = load_data(n)
    keyword(values)
    naive(values)


# -- values that must stay data ----------------------------------------------------------------
@step(environment={"CONVEYOR_NOTE": PAYLOADS[0], "OTHER": PAYLOADS[6]})
def echo(text: str) -> str:
    return os.environ["CONVEYOR_NOTE"] + text


@step(settings={"dagster": {"description": PAYLOADS[1], "tags": {"note": PAYLOADS[2]}}})
def shout(text: str) -> Annotated[str, "loud"]:
    return text.upper()


@pipeline(
    name="hostile",
    settings={"dagster": {"description": PAYLOADS[7], "tags": {"note": PAYLOADS[4]}}},
)
def hostile(text: str = PAYLOADS[3], extra: dict = {"k": PAYLOADS[5]}) -> None:  # noqa: B006
    shout(echo(text))


# -- a step that fails once ------------------------------------------------------------------
@step(retries=1, retry_delay=0)
def wobble() -> int:
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


# -- independent steps that record when they ran -----------------------------------------------
@step
def nap(seconds: float) -> Annotated[list[float], "span"]:
    start = time.time()
    time.sleep(seconds)
    return [start, time.time()]


@step
def spans(a: list[float], b: list[float]) -> list[list[float]]:
    return [a, b]


@pipeline(name="naps")
def naps(seconds: float = 4.0) -> None:
    spans(nap(seconds), nap(seconds))


# -- a step whose op process is killed -----------------------------------------------------------
@step
def doomed() -> int:
    import signal

    # The step's parent is the Dagster op process: killing it is what an OOM killer does.
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(60)  # the step process ends itself once its op is gone
    return 1


@step
def after_doomed(x: int) -> int:
    return x


@pipeline(name="killed")
def killed() -> None:
    after_doomed(doomed())


# -- a step that reads a secret ------------------------------------------------------------------
@step(secrets=["app"], environment={"TOKEN": "{{app.token}}"})
def token_length() -> int:
    from conveyor import get_step_context

    token = get_step_context().get_secret("app")["token"]
    assert os.environ["TOKEN"] == token
    print(f"the token is {token}")  # masked in every log
    return len(token)


@pipeline(enable_cache=False)
def uses_app_secret() -> None:
    token_length()
