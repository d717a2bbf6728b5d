"""Prefect adapter overhead, against plain Prefect flows measured in the same run.

1. Parallel: 20 independent steps that each sleep 0.5 s, as a conveyor
   pipeline on a prefect stack, and as a plain Prefect flow of 20 tasks on a
   ThreadPoolTaskRunner(20). Flow time is the flow run's start-to-end time as
   the Prefect server recorded it.
2. Per step: chains of 5 and of 25 steps that do nothing, one after the
   other, as conveyor pipelines and as plain Prefect flows of tasks chained
   with ``wait_for``. Per-step time is the flow-time difference / 20, so what
   a flow run costs once drops out; it includes all that conveyor adds per
   step (metadata records, materializing the output).

Run with the prefect session's environment:
    .nox/prefect/bin/python benchmarks/bench_prefect.py [--repeat 3]
It starts its own Prefect server on 127.0.0.1 unless PREFECT_API_URL is set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor import pipeline, step

WIDTH = 20
SLEEP = 0.5


@step
def sleeper(index: int) -> int:
    time.sleep(SLEEP)
    return index


@pipeline(name="bench_parallel")
def bench_parallel() -> None:
    for i in range(WIDTH):
        sleeper(i)


@step
def link(index: int) -> int:
    return index


def _chain(length: int) -> Any:
    @pipeline(name=f"bench_chain_{length}")
    def chain() -> None:
        previous = None
        for i in range(length):
            current = link(i)
            if previous is not None:
                current.after(previous)
            previous = current

    return chain


SHORT, LONG = 5, 25
bench_chain_short, bench_chain_long = _chain(SHORT), _chain(LONG)


def _plain_flows() -> tuple[Any, Any]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(cache_policy=NO_CACHE, persist_result=False)
    def plain_sleeper(index: int) -> int:
        time.sleep(SLEEP)
        return index

    @task(cache_policy=NO_CACHE, persist_result=False)
    def plain_link(index: int) -> int:
        return index

    @flow(name="plain_parallel", task_runner=ThreadPoolTaskRunner(max_workers=WIDTH), persist_result=False)
    def plain_parallel() -> None:
        futures = [plain_sleeper.submit(i) for i in range(WIDTH)]
        for f in futures:
            f.wait()

    @flow(name="plain_chain", task_runner=ThreadPoolTaskRunner(max_workers=WIDTH), persist_result=False)
    def plain_chain(length: int) -> None:
        futures: list[Any] = []
        for i in range(length):
            futures.append(plain_link.submit(i, wait_for=futures[-1:]))
        futures[-1].wait()

    return plain_parallel, plain_chain


def _flow_seconds(flow_run_id: Any) -> float:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    assert run.start_time is not None and run.end_time is not None
    return (run.end_time - run.start_time).total_seconds()


def _plain(flow: Any, **params: Any) -> float:
    state = flow(**params, return_state=True)
    assert state.is_completed(), state
    return _flow_seconds(state.state_details.flow_run_id)


def _conveyor(pipe: Any) -> float:
    run = pipe.with_options(enable_cache=False, stack="on_prefect")()
    assert run.status == "completed", run
    return _flow_seconds(run.orchestrator_run_id)


def _start_server(home: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    from conveyor_testing.processes import ServerStartError, free_port, spawn_server, stop_server, wait_for_http

    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url.rstrip("/"), None
    url = f"http://127.0.0.1:{free_port()}/api"
    port = url.rsplit(":", 1)[1].split("/")[0]
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    prefect = Path(sys.executable).with_name("prefect")
    log = home / "server.log"
    proc = spawn_server(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", port, "--no-ui"], log_path=log, env=env
    )
    try:
        wait_for_http(f"{url}/health", proc=proc, what="prefect server", log_path=log, timeout=120)
    except ServerStartError as exc:
        stop_server(proc)
        raise SystemExit(f"the Prefect server did not start: {exc}") from None
    return url, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each flow; the best is reported")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "client"))
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["CONVEYOR_REPOSITORY"] = str(work / "repo")
    (work / "repo" / ".conveyor").mkdir(parents=True, exist_ok=True)
    os.environ.pop("CONVEYOR_STORE_URL", None)
    url, server = _start_server(work / "server")
    try:
        from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_LEVEL, temporary_settings

        from conveyor import Client

        client = Client()
        client.register_component("orchestrator", "pf", "prefect", {"api_url": url, "max_workers": WIDTH})
        client.register_stack("on_prefect", {"orchestrator": "pf", "artifact_store": "default"})
        plain_parallel, plain_chain = _plain_flows()
        with temporary_settings({PREFECT_API_URL: url, PREFECT_LOGGING_LEVEL: "WARNING"}):
            _plain(plain_chain, length=SHORT)  # warm up imports and the client on both sides
            _conveyor(bench_chain_short)
            results: dict[str, list[float]] = {
                k: []
                for k in (
                    "plain_parallel",
                    "conveyor_parallel",
                    "plain_short",
                    "plain_long",
                    "conveyor_short",
                    "conveyor_long",
                )
            }
            for _ in range(args.repeat):
                results["plain_parallel"].append(_plain(plain_parallel))
                results["conveyor_parallel"].append(_conveyor(bench_parallel))
                results["plain_short"].append(_plain(plain_chain, length=SHORT))
                results["plain_long"].append(_plain(plain_chain, length=LONG))
                results["conveyor_short"].append(_conveyor(bench_chain_short))
                results["conveyor_long"].append(_conveyor(bench_chain_long))
        best = {k: min(v) for k, v in results.items()}
        print(
            f"prefect API {url}; best of {args.repeat} runs each; flow time = flow run start to end (Prefect's clock)"
        )
        print(
            f"{WIDTH} x {SLEEP} s sleeps in parallel: plain Prefect {best['plain_parallel']:.2f} s, "
            f"conveyor {best['conveyor_parallel']:.2f} s (ratio {best['conveyor_parallel'] / best['plain_parallel']:.2f})"
        )
        # The slope between two chain lengths leaves out what a flow run costs once.
        plain_step = (best["plain_long"] - best["plain_short"]) / (LONG - SHORT)
        conveyor_step = (best["conveyor_long"] - best["conveyor_short"]) / (LONG - SHORT)
        print(
            f"per step (chains of {SHORT} and {LONG} no-op steps): plain Prefect task {plain_step * 1000:.0f} ms, "
            f"conveyor step {conveyor_step * 1000:.0f} ms (ratio {conveyor_step / plain_step:.2f})"
        )
        print(
            f"once per flow run ({SHORT}-step chain): plain Prefect {best['plain_short']:.2f} s, "
            f"conveyor {best['conveyor_short']:.2f} s"
        )
    finally:
        if server is not None:
            if "prefect" in sys.modules:  # send the logs flow runs left behind while the server answers
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5)
            from conveyor_testing.processes import stop_server

            stop_server(server, timeout=20, group=True)


if __name__ == "__main__":
    main()
