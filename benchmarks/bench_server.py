"""Team server speed: requests per step, a pipeline through the server, the step process, latency under load.

Every figure is printed next to a baseline measured in the same run:

    .nox/core/bin/python benchmarks/bench_server.py [--repeat N] [--no-load]

Targets (issue 13): at most 6 HTTP requests per step in process mode; a
50-step pipeline through the server within 1.3x the same pipeline on the
embedded SQLite store; a step process that talks to the server costs at
most 0.15 s beyond ``python -c pass``; p95 request latency under 100 ms with
two workers on PostgreSQL and 16 pipelines of 20 steps running at once.

The servers are real (``conveyor server start`` on 127.0.0.1, started and
stopped by this script, as the tests' fixtures do).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPES = """
from typing import Annotated

from conveyor import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@step
def trivial() -> int:
    return 1


@pipeline(name="chain", enable_cache=False)
def chain(n: int = 50) -> None:
    value = inc(0)
    for _ in range(n - 1):
        value = inc(value)


@pipeline(name="one", enable_cache=False)
def one() -> None:
    trivial()


@step
def first() -> Annotated[int, "value"]:
    return 0


@step
def add_one(value: int) -> Annotated[int, "value"]:
    return value + 1


@pipeline(name="load", enable_cache=False)
def load() -> None:
    value = first()
    for _ in range(19):
        value = add_one(value)
"""

# Times each request of the REST store in this process and writes them out at exit.
TIMED = """
import atexit, json, os, sys, time
from conveyor.stores.rest import _http
latencies = []
original = _http.ServerConnection.request
def timed(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return original(self, *args, **kwargs)
    finally:
        latencies.append(time.perf_counter() - start)
_http.ServerConnection.request = timed
atexit.register(lambda: open(os.environ["LATENCY_FILE"], "w").write(json.dumps(latencies)))
sys.path.insert(0, os.getcwd())
import bench_server_pipes
bench_server_pipes.load()
"""


def _row(name: str, value: float, baseline: float | None, target: str, unit: str = "ms") -> None:
    scale = 1000 if unit == "ms" else 1
    ratio = f"{value / baseline:6.2f}x" if baseline else "       "
    base = f"{baseline * scale:8.1f} {unit}" if baseline is not None else " " * (9 + len(unit))
    print(f"{name:<52} {value * scale:9.1f} {unit}   baseline {base}  {ratio}   target: {target}")


def _run(python: str, script: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env, cwd=cwd)
    if out.returncode != 0:
        raise SystemExit(f"a benchmark step failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout


def _best(cmd: list[str], repeat: int, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def _requests_in_log(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if re.search(r'"[A-Z]+ /api/', line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="skip the PostgreSQL load test")
    args = parser.parse_args()
    from conveyor_testing.server import start_conveyor_server

    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-server-"))
    (work / "bench_server_pipes.py").write_text(PIPES)
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_STORE", "CONVEYOR_SERVER", "CONVEYOR_API"))
    }
    # Bytecode written once, as an installed conveyor has it (this machine's default is to write none).
    base_env.update(CONVEYOR_CONFIG_DIR=str(work / "config"), PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="")
    server = start_conveyor_server(access_log=True)
    servers = [server]
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; server over SQLite, 1 worker\n")
        local_env = {**base_env, "CONVEYOR_REPOSITORY": str(work / "local")}
        rest_env = {
            **base_env,
            "CONVEYOR_REPOSITORY": str(work / "rest"),
            "CONVEYOR_SERVER": server.url,
            "CONVEYOR_API_KEY": server.create_service_account("bench", "editor"),
        }
        for folder in ("local", "rest"):
            (work / folder).mkdir()
        subprocess.run([python, "-m", "conveyor.cli", "init"], env=local_env, cwd=work / "local", check=True)
        for name, mode in (("threads", "thread"), ("procs", "process")):
            server.api(
                "POST",
                "/api/components",
                {"type": "orchestrator", "flavor": "local", "name": name, "config": {"mode": mode}},
            )
        components = {c["name"]: c["id"] for c in server.api("GET", "/api/components")}
        artifact_store = server.api("GET", "/api/stacks/default")["components"]["artifact_store"]["id"]
        for name in ("threads", "procs"):
            server.api(
                "POST",
                "/api/stacks",
                {
                    "name": name,
                    "create": True,
                    "component_ids": {"orchestrator": components[name], "artifact_store": artifact_store},
                },
            )
            subprocess.run(
                [
                    python,
                    "-m",
                    "conveyor.cli",
                    "orchestrator",
                    "register",
                    name,
                    "--flavor",
                    "local",
                    "--mode",
                    "thread" if name == "threads" else "process",
                ],
                env=local_env,
                cwd=work / "local",
                check=True,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(
                [python, "-m", "conveyor.cli", "stack", "register", name, "-o", name, "-a", "default"],
                env=local_env,
                cwd=work / "local",
                check=True,
                stdout=subprocess.DEVNULL,
            )

        # 1. Requests per step in process mode: every request the server saw during the run.
        timing = """
import sys, time
import bench_server_pipes
from conveyor import Client
store = Client().store
bench_server_pipes.chain.with_options(stack=sys.argv[1])(n=int(sys.argv[2]))  # warm up
before = getattr(getattr(store, "http", None), "requests", 0)
start = time.perf_counter()
bench_server_pipes.chain.with_options(stack=sys.argv[1])(n=int(sys.argv[2]))
took = time.perf_counter() - start
print(took, getattr(getattr(store, "http", None), "requests", 0) - before)
"""

        def chain(env: dict[str, str], stack: str, n: int) -> tuple[float, int]:
            out = subprocess.run(
                [python, "-c", timing, stack, str(n)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=env["CONVEYOR_REPOSITORY"],
            )
            took, driver = out.stdout.split()[-2:]
            return float(took), int(driver)

        n = 10
        chain(rest_env, "procs", n)
        before = _requests_in_log(server.log_path)
        _, driver = chain(rest_env, "procs", n)
        total = _requests_in_log(server.log_path) - before
        # The script ran the pipeline twice (warm-up, then timed): halve the server's count.
        per_run = total / 2
        print(
            f"{'HTTP requests per step, process mode (whole run / steps)':<52} {per_run / n:9.1f}      "
            f"target: <= 6   ({per_run:.0f} for {n} steps; the driver {driver}, each step process "
            f"{(per_run - driver) / n:.1f})"
        )

        # 2. A 50-step pipeline, thread and process mode: server vs the embedded SQLite store.
        for stack in ("threads", "procs"):
            local = min(chain(local_env, stack, 50)[0] for _ in range(max(1, args.repeat // 2)))
            rest = min(chain(rest_env, stack, 50)[0] for _ in range(max(1, args.repeat // 2)))
            _row(f"50-step pipeline through the server ({stack})", rest, local, "<= 1.3x")

        # 3. One step process on a trivial step, minus python -c pass.
        step_script = """
import sys
import bench_server_pipes
from conveyor import Client
run = bench_server_pipes.one()
store = Client().store
child = store.child_environment(run.id)
print(run.deployment_id, run.id, " ".join(f"{k}={v}" for k, v in child.items()))
"""

        def one_step(env: dict[str, str]) -> float:
            deployment, run_id, *child = _run(python, step_script, env, Path(env["CONVEYOR_REPOSITORY"])).split()
            step_env = {k: v for k, v in env.items() if k not in ("CONVEYOR_SERVER", "CONVEYOR_API_KEY")}
            step_env.update(dict(item.split("=", 1) for item in child))
            # A run still running, so its token works: reopen it for the step's attempts.
            store_env = {**env}
            _run(
                python,
                f"from conveyor import Client; Client().store.update_run({run_id!r}, status='running')",
                store_env,
                Path(env["CONVEYOR_REPOSITORY"]),
            )
            cmd = [
                python,
                "-m",
                "conveyor.runtime",
                "run-step",
                "--deployment",
                deployment,
                "--step",
                "trivial",
                "--run-id",
                run_id,
            ]
            return _best(cmd, args.repeat, env=step_env, cwd=work)

        bare = _best([python, "-c", "pass"], args.repeat)
        rest_step = one_step(rest_env)
        local_step = one_step(local_env)
        _row("step process, server (beyond python -c pass)", rest_step - bare, None, "<= 150 ms")
        _row("step process, server", rest_step, local_step, "(baseline: the same step on SQLite)")

        # 4. p95 latency: two workers on PostgreSQL, 16 pipelines of 20 steps at once.
        if not args.no_load:
            from conveyor_testing.sql_servers import start_postgres

            pg = start_postgres()
            try:
                loaded = start_conveyor_server(pg.url(pg.create_database("bench")), workers=2)
                servers.append(loaded)
                load_env = {
                    **base_env,
                    "CONVEYOR_SERVER": loaded.url,
                    "CONVEYOR_API_KEY": loaded.create_service_account("ci", "editor"),
                    "CONVEYOR_REPOSITORY": str(work / "load"),
                }
                (work / "load").mkdir()
                procs = []
                start = time.perf_counter()
                for i in range(16):
                    env = {**load_env, "LATENCY_FILE": str(work / f"latency-{i}.json")}
                    procs.append(subprocess.Popen([python, "-c", TIMED], env=env, cwd=work, stdout=subprocess.DEVNULL))
                codes = [p.wait(timeout=900) for p in procs]
                wall = time.perf_counter() - start
                assert codes == [0] * 16, codes
                latencies = sorted(x for i in range(16) for x in json.loads((work / f"latency-{i}.json").read_text()))
                p95 = latencies[int(0.95 * (len(latencies) - 1))]
                median = statistics.median(latencies)
                _row("p95 request latency, 16 x 20 steps, 2 workers, PG", p95, median, "< 100 ms (baseline: median)")
                print(f"{'':<52} {len(latencies)} requests in {wall:.1f} s")
            finally:
                pg.stop()
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
