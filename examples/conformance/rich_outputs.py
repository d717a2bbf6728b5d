"""Outputs of many built-in types, pydantic models and bytes, in one step."""

from typing import Annotated

from pydantic import BaseModel

from conveyor import pipeline, step


class Stats(BaseModel):
    count: int
    mean: float
    labels: list[str]


@step
def make(
    seed: int,
) -> tuple[
    Annotated[dict[str, int], "counts"],
    Annotated[tuple[int, str, float], "record"],
    Annotated[set[str], "tags"],
    Annotated[bytes, "blob"],
    Annotated[Stats, "stats"],
    Annotated[None, "nothing"],
]:
    counts = {f"k{i}": (seed * i) % 7 for i in range(5)}
    return (
        counts,
        (seed, "row", seed / 3),
        {"alpha", "beta", f"s{seed}"},
        bytes(range(seed % 256)) + b"\x00\xff",
        Stats(count=len(counts), mean=sum(counts.values()) / len(counts), labels=sorted(counts)),
        None,
    )


@step
def describe(stats: Stats, tags: set[str], record: tuple[int, str, float]) -> str:
    return f"{stats.count} counts, tags={sorted(tags)}, record={record}"


@pipeline(name="rich_outputs")
def rich_outputs(seed: int = 5) -> None:
    counts, record, tags, blob, stats, nothing = make(seed)
    describe(stats, tags, record)
