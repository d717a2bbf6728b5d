"""conveyor-airflow benchmarks: export speed, DAG parse time, per-step cost inside ``dag.test()``.

Run it in an environment with Airflow 3 and conveyor-airflow installed::

    python benchmarks/bench_airflow.py [--steps 1000] [--parse-steps 100] [--run-steps 10]

It makes its own AIRFLOW_HOME and conveyor repository in a temp folder and
prints, each against a baseline measured in the same run:

* export of a ``--steps`` pipeline (trace, check, store, compile, write),
  against the 1 s budget and against tracing alone;
* DagBag parse time of an exported ``--parse-steps`` DAG against a
  hand-written DAG with the same operators and edges;
* seconds per trivial step in ``dag.test()`` (python mode) against bare
  BashOperator tasks that run ``true``, and against the ~12 s per step
  container quoted for ZenML's Airflow orchestrator on this kind of machine
  (a quoted figure, not measured here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor import pipeline, step

ZENML_SECONDS_PER_STEP = 12.0
"""Quoted: ZenML's Airflow orchestrator, one Docker container per step, on this kind of machine."""


@step
def inc(x: int) -> int:
    return x + 1


@step
def const(i: int) -> int:
    return i


def chain(n: int):
    @pipeline(name=f"chain_{n}", enable_cache=False)
    def chained(start: int = 0) -> None:
        x = inc(start)
        for _ in range(n - 1):
            x = inc(x)

    return chained


def fan(n: int):
    @pipeline(name=f"fan_{n}", enable_cache=False)
    def fanned() -> None:
        for i in range(n):
            const(i)

    return fanned


def _setup(root: Path) -> Path:
    dags = root / "dags"
    dags.mkdir()
    env = {
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "CONVEYOR_REPOSITORY": str(root / "repo"),
    }
    os.environ.update(env)
    (root / "repo" / ".conveyor").mkdir(parents=True)  # the repository the runs are recorded in
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=600)
    return dags


def _register(python: str) -> None:
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", "af", "airflow", {"python": python})
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default"})


def bench_export(out: Path, steps: int) -> None:
    from conveyor._launch import export_pipeline

    pipe = chain(steps)
    started = time.perf_counter()
    pipe.trace()
    trace = time.perf_counter() - started
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        [path] = export_pipeline(pipe, out, stack="on_airflow")
        timings.append(time.perf_counter() - started)
    best = min(timings)
    print(f"export of a {steps}-step pipeline: {best:.3f} s (best of 3; {path.stat().st_size // 1024} KiB)")
    print(f"  vs the 1 s budget: {best / 1.0:.2f}x   vs tracing alone ({trace:.3f} s): {best / trace:.2f}x")


def _hand_written(path: Path, exported: Path, steps: int) -> None:
    """The same DAG as a person writes it: the same operators, commands, env and edges, no literal()."""
    deployment = exported.read_text().split("CONVEYOR_DEPLOYMENT = '")[1].split("'")[0]
    lines = [
        "from airflow.sdk import DAG",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "",
        "ENV = {'CONVEYOR_PYTHON': 'python', 'CONVEYOR_STORE_URL': 'sqlite:////tmp/conveyor.db'}",
        "",
        f"with DAG(dag_id='hand_written_{steps}', schedule=None, catchup=False, tags=['conveyor']) as dag:",
    ]
    for i in range(steps):
        sid = "inc" if i == 0 else f"inc_{i + 1}"
        lines.append(
            f"    {sid} = BashOperator(task_id='{sid}', bash_command='exec $CONVEYOR_PYTHON -m conveyor.runtime "
            f"run-step --deployment={deployment} --step={sid} --run-key=airflow:$AIRFLOW_CTX_DAG_ID:"
            f"$AIRFLOW_CTX_DAG_RUN_ID', env={{**ENV, 'CONVEYOR_STEP': '{sid}'}}, append_env=True, "
            f"do_xcom_push=False, retries=0)"
        )
    for i in range(1, steps):
        up = "inc" if i == 1 else f"inc_{i}"
        lines.append(f"    {up} >> inc_{i + 1}")
    path.write_text("\n".join(lines) + "\n")


def _parse_seconds(path: Path) -> float:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return (
        bag.dagbag_stats[0].duration.total_seconds()
        if hasattr(bag.dagbag_stats[0].duration, "total_seconds")
        else float(bag.dagbag_stats[0].duration)
    )


def bench_parse(root: Path, steps: int, rounds: int = 15) -> None:
    from conveyor._launch import export_pipeline

    folder = root / "parse"
    [exported] = export_pipeline(chain(steps), folder / "exported", stack="on_airflow")
    hand = folder / "hand" / f"hand_written_{steps}.py"
    hand.parent.mkdir(parents=True)
    _hand_written(hand, exported, steps)
    _parse_seconds(exported), _parse_seconds(hand)  # warm the imports
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_parse_seconds(exported))
        theirs.append(_parse_seconds(hand))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"DagBag parse of a {steps}-step DAG: exported {a * 1000:.1f} ms, hand-written {b * 1000:.1f} ms "
        f"(medians of {rounds})"
    )
    print(f"  ratio exported / hand-written: {a / b:.2f}x (target: within 1.5x)")


def _step_process_seconds(dag_file: Path, python: str, times: int) -> list[float]:
    """Wall time of the step entrypoint that a task runs, started directly, each in a new run."""
    from conveyor import Client

    deployment = dag_file.read_text().split("CONVEYOR_DEPLOYMENT = '")[1].split("'")[0]
    env = {
        **os.environ,
        "CONVEYOR_STORE_URL": Client().store.url,
        "CONVEYOR_SOURCE_ROOT": str(Path(__file__).resolve().parent),
    }
    out = []
    for i in range(times):
        started = time.perf_counter()
        subprocess.run(
            [
                python,
                "-m",
                "conveyor.runtime",
                "run-step",
                f"--deployment={deployment}",
                "--step=const",
                f"--run-key=bench:{i}",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        out.append(time.perf_counter() - started)
    return out


def bench_dag_test(dags: Path, steps: int, python: str, rounds: int = 3) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from conveyor._launch import export_pipeline

    bare = dags / f"bare_{steps}.py"
    bare.write_text(
        "from airflow.sdk import DAG\n"
        "from airflow.providers.standard.operators.bash import BashOperator\n"
        f"with DAG(dag_id='bare_{steps}', schedule=None, catchup=False) as dag:\n"
        + "".join(f"    BashOperator(task_id='t{i}', bash_command='true', do_xcom_push=False)\n" for i in range(steps))
    )
    [exported] = export_pipeline(fan(steps), dags, stack="on_airflow")

    def task_seconds(path: Path, dag_id: str) -> list[float]:
        dag = DagBag(dag_folder=str(path), safe_mode=False).get_dag(dag_id)
        dag_run = dag.test()
        assert str(getattr(dag_run.state, "value", dag_run.state)) == "success", dag_run.state
        return [ti.duration for ti in dag_run.get_task_instances()]

    started = time.perf_counter()
    task_seconds(bare, f"bare_{steps}")  # the first dag.test() builds the in-process execution API
    warm = time.perf_counter() - started
    bare_s: list[float] = []
    ours_s: list[float] = []
    for _ in range(rounds):
        bare_s += task_seconds(bare, f"bare_{steps}")
        ours_s += task_seconds(exported, f"fan_{steps}")
    b, o = statistics.median(bare_s), statistics.median(ours_s)
    alone = statistics.median(_step_process_seconds(exported, python, rounds * 2))
    print(
        f"dag.test() of {steps} trivial steps x {rounds} rounds (first dag.test() of the process: {warm:.1f} s, "
        "not counted), median task duration:"
    )
    print(
        f"  conveyor python mode: {o:.2f} s per step; bare BashOperator 'true': {b:.2f} s per task "
        f"({o / b:.1f}x; the difference is the step process: imports, store, artifacts)"
    )
    print(f"  the step process alone, outside Airflow (python -m conveyor.runtime run-step): {alone:.2f} s")
    print(
        f"  vs ~{ZENML_SECONDS_PER_STEP:g} s per step container quoted for ZenML: "
        f"{ZENML_SECONDS_PER_STEP / o:.0f}x less (target: under 1 s per step)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps of the exported pipeline")
    parser.add_argument("--parse-steps", type=int, default=100, help="steps of the parsed DAG")
    parser.add_argument("--run-steps", type=int, default=10, help="steps run with dag.test()")
    parser.add_argument("--step-python", default=sys.executable, help="interpreter of the python-mode steps")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (timings scale with it)")
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        root = Path(tmp)
        dags = _setup(root)
        _register(args.step_python)
        bench_export(root / "export", args.steps)
        bench_parse(root, args.parse_steps)
        bench_dag_test(dags, args.run_steps, args.step_python)


if __name__ == "__main__":
    main()
