"""Fan-out / fan-in: one source, parallel branches, one join, an ordering-only edge."""

from typing import Annotated

from conveyor import pipeline, step


@step
def source(width: int) -> Annotated[list[float], "values"]:
    return [i / 4 for i in range(width * 3)]


@step
def branch(values: list[float], index: int, width: int) -> float:
    return sum(v * v for v in values[index::width])


@step
def join(a: float, b: float, c: float, d: float) -> Annotated[dict[str, float], "summary"]:
    return {"total": a + b + c + d, "largest": max(a, b, c, d)}


@step
def announce() -> Annotated[str, "note"]:
    return "join finished"


@pipeline(name="fan_out")
def fan_out(width: int = 4) -> None:
    values = source(width)
    parts = [branch(values, index=i, width=width) for i in range(4)]
    summary = join(*parts)
    announce().after(summary)
