"""The quickstart pipeline, as a module: single, named and multiple outputs."""

from typing import Annotated

from conveyor import pipeline, step


@step
def load_data(n: int = 10) -> Annotated[list[int], "numbers"]:
    return list(range(n))


@step(retries=1)
def split(numbers: list[int]) -> tuple[Annotated[list[int], "even"], Annotated[list[int], "odd"]]:
    print(f"splitting {len(numbers)} numbers")
    return [x for x in numbers if x % 2 == 0], [x for x in numbers if x % 2]


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline(name="quickstart")
def quickstart(n: int = 10) -> None:
    numbers = load_data(n=n)
    even, odd = split(numbers)
    total(even)
    total(odd)
