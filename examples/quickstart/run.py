"""conveyor's quickstart: a typed pipeline, run locally, read back through the client.

Run it with ``python examples/quickstart/run.py``; run it again and every
step but ``split`` (which turns caching off) comes from the cache.
"""

from typing import Annotated

from conveyor import Client, log_metadata, pipeline, step


@step
def load_data(n: int = 10) -> Annotated[list[int], "numbers"]:
    """The numbers 0 .. n-1."""
    return list(range(n))


@step(enable_cache=False, retries=2)
def split(numbers: list[int]) -> tuple[Annotated[list[int], "even"], Annotated[list[int], "odd"]]:
    """Even and odd numbers apart."""
    print(f"splitting {len(numbers)} numbers")
    even, odd = [x for x in numbers if x % 2 == 0], [x for x in numbers if x % 2]
    log_metadata({"even_count": len(even), "odd_count": len(odd)})  # shown by run describe and run compare
    return even, odd


@step
def report(even: list[int], odd: list[int]) -> Annotated[dict[str, int], "sums"]:
    """The sum of each group."""
    return {"even": sum(even), "odd": sum(odd)}


@pipeline(name="demo", enable_cache=True)
def demo(n: int = 10) -> None:
    """Load numbers, split them, sum each group."""
    numbers = load_data(n=n)
    even, odd = split(numbers)
    report(even, odd)


if __name__ == "__main__":
    run = demo(n=20)
    if run is None:  # an orchestrator that deploys (an Airflow DAG file, a schedule) and does not run now
        raise SystemExit(
            "demo was deployed to the active stack's orchestrator; its runs show up in `conveyor pipeline runs demo`"
        )
    print(f"run {run.name}: {run.status}")
    for step_id, step_run in run.steps.items():
        print(f"  {step_id:<10} {step_run.status:<10} {'(cached)' if step_run.cached else ''}")
    even = Client().get_pipeline("demo").last_run.steps["split"].outputs["even"].load()
    print(f"even numbers: {even}")
    print(f"sums: {run.steps['report'].outputs['sums'].load()}")
