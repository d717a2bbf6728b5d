"""Containers: image build and reuse, and what a step container costs.

Needs a running Docker daemon, ``docker-registry`` and the base image
(``bash scripts/build-base-image.sh``). Starts its own registry on a free
port of 127.0.0.1 and works in a temporary repository; removes the images it
made. Prints seconds and ratios against a baseline measured in the same run:
a bare ``docker run --network host <base> python -c pass``.

    .nox/docker/bin/python benchmarks/bench_docker.py [--steps 4] [--repeat 3]

Targets: an unchanged pipeline submits with no build in under 1 s; a
code-only change rebuilds in under 10 s (only the last layer); a trivial
step container costs under 1.5 s end to end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGE = os.environ.get("CONVEYOR_BASE_IMAGE", "conveyor-python:bookworm")

PIPELINE = """
from conveyor import pipeline, step

VERSION = {version}


@step
def first() -> int:
    return VERSION


@step
def next_one(value: int) -> int:
    return value + 1


@pipeline(name="bench_docker")
def bench(steps: int = {steps}) -> None:
    value = first()
    for _ in range(steps - 1):
        value = next_one(value)
"""


def _start_registry(work: Path):
    from conveyor_testing.docker_env import start_registry

    return start_registry(work / "registry")


def _write(work: Path, version: int, steps: int):
    path = work / "bench_docker_pipeline.py"
    path.write_text(PIPELINE.format(version=version, steps=steps))
    sys.modules.pop("bench_docker_pipeline", None)
    importlib.invalidate_caches()
    return importlib.import_module("bench_docker_pipeline").bench


def _deployment(pipe, stack_name):
    from conveyor._launch import build_deployment
    from conveyor._repository import Repository
    from conveyor.orchestrators import LaunchContext

    repo = Repository.current()
    stack = repo.stack(stack_name)
    deployment = build_deployment(pipe, pipe.trace(), stack)
    return deployment, LaunchContext(store=repo.store(), stack=stack, source_root=pipe.source_root())


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="sequential trivial steps in the timed pipeline")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from conveyor_docker._client import docker_client

    client = docker_client()
    client.images.get(BASE_IMAGE)
    work = Path(tempfile.mkdtemp(prefix="bench-docker-"))
    registry_server = _start_registry(work)
    registry = registry_server.registry
    code = work / "project"  # the source root: only the pipeline's code
    code.mkdir()
    os.environ["CONVEYOR_REPOSITORY"] = str(code)
    (code / ".conveyor").mkdir()
    os.chdir(code)
    sys.path.insert(0, str(code))
    made: set[str] = set()
    try:
        from conveyor import Client

        c = Client()
        c.register_component(
            "image_builder", "img", "docker", {"parent_image": BASE_IMAGE, "cache_dir": str(work / "cache")}
        )
        c.register_component("container_registry", "reg", "default", {"uri": f"{registry.host}/bench"})
        c.register_component("orchestrator", "boxed", "local_docker", {})
        c.register_stack(
            "boxed",
            {"orchestrator": "boxed", "artifact_store": "default", "image_builder": "img", "container_registry": "reg"},
        )

        baseline = _timed(
            lambda: client.containers.run(BASE_IMAGE, ["python", "-c", "pass"], network_mode="host", remove=True),
            args.repeat,
        )

        pipe = _write(code, 1, args.steps)
        deployment, ctx = _deployment(pipe, "boxed")
        builder = ctx.stack.component("image_builder")
        started = time.perf_counter()
        images = builder.build_images(deployment, ctx)
        first_build = time.perf_counter() - started
        made.update(b.name for b in builder.builds)

        unchanged = _timed(lambda: builder.build_images(deployment, ctx), args.repeat)
        assert builder.builds[-1].action == "reused"

        pipe = _write(code, 2, args.steps)
        deployment, ctx = _deployment(pipe, "boxed")
        started = time.perf_counter()
        images = builder.build_images(deployment, ctx)
        code_only = time.perf_counter() - started
        made.update(b.name for b in builder.builds)
        old_layers = client.images.get(builder.builds[0].name).attrs["RootFS"]["Layers"]
        new_layers = client.images.get(builder.builds[-1].name).attrs["RootFS"]["Layers"]
        changed = sum(1 for a, b in zip(old_layers, new_layers, strict=False) if a != b)

        boxed = pipe.with_options(stack="boxed", enable_cache=False)
        local = pipe.with_options(stack="default", enable_cache=False)
        boxed()  # warm: image present, daemon caches warm
        run_boxed = _timed(boxed, args.repeat)
        run_local = _timed(local, args.repeat)
        submit = _timed(lambda: builder.build_images(deployment, ctx), 1)
        per_step = (run_boxed - run_local - submit) / args.steps + run_local / args.steps
        del images

        rows = [
            ("baseline: docker run python -c pass", baseline, "target"),
            ("first build + push (cold wheel cache)", first_build, ""),
            ("unchanged pipeline: submit (no build)", unchanged, "< 1 s"),
            (f"code-only change: rebuild + push ({changed} layer changed)", code_only, "< 10 s"),
            (f"pipeline of {args.steps} trivial steps, local_docker", run_boxed, ""),
            (f"pipeline of {args.steps} trivial steps, local (threads)", run_local, ""),
            ("one trivial step container, end to end", per_step, "< 1.5 s"),
        ]
        print(f"{'what':58} {'seconds':>8} {'x baseline':>11}  target")
        for name, seconds, target in rows:
            print(f"{name:58} {seconds:8.2f} {seconds / baseline:11.1f}  {target if target != 'target' else ''}")
    finally:
        for name in made:
            try:
                client.images.remove(name)
            except Exception:
                pass
        registry_server.stop()
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
