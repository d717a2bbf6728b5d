"""A step that fails: its run fails, its downstream is skipped, other branches finish."""

from conveyor import pipeline, step


@step
def start() -> int:
    return 3


@step
def explode(x: int) -> int:
    print("about to fail")
    raise ValueError(f"bad input {x}")


@step
def after_explode(x: int) -> int:
    return x + 1


@step
def independent(x: int) -> int:
    return x * 2


@pipeline(name="failing_step")
def failing_step() -> None:
    x = start()
    after_explode(explode(x))
    independent(x)
