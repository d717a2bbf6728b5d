"""Command line of the step entrypoint.

``python -m conveyor.runtime run-step --deployment ID --step STEP (--run-id ID | --run-key KEY)``
runs one step of a stored deployment in this process. Engines pass their own
run identifier as ``--run-key`` (``airflow:<dag run id>``); the first step to
start creates the conveyor run, the others join it.

Exit codes: 0 the step completed or was cached, 1 the step failed, 2 the
command or its setup is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from conveyor._constants import ENV_SOURCE_ROOT, ENV_STORE_URL
from conveyor.dsl import ENTRYPOINT_ENV
from conveyor.exceptions import ConveyorError, StepFailedError


def entrypoint_command(
    deployment_id: str,
    step_id: str,
    *,
    run_key: str | None = None,
    run_id: str | None = None,
    python: str = "python",
) -> list[str]:
    """The argv that runs one step (what adapters put into their tasks)."""
    cmd = [python, "-m", "conveyor.runtime", "run-step", "--deployment", deployment_id, "--step", step_id]
    if run_id is not None:
        cmd += ["--run-id", run_id]
    if run_key is not None:
        cmd += ["--run-key", run_key]
    return cmd


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conveyor.runtime", description="conveyor's step entrypoint")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-step", help="run one step of a stored deployment")
    run.add_argument("--deployment", required=True, help="deployment id")
    run.add_argument("--step", required=True, help="step invocation id")
    group = run.add_mutually_exclusive_group(required=True)
    group.add_argument("--run-id", help="id of an existing conveyor run")
    group.add_argument("--run-key", help="the engine's run identifier; the conveyor run is created on first use")
    run.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                     help="override a pipeline parameter (JSON value)")
    run.add_argument("--orchestrator-run-id", help="the engine's id of this run, recorded with the conveyor run")
    run.add_argument("--store-url", help=f"metadata store URL (default: ${ENV_STORE_URL} or the repository's)")
    run.add_argument("--image", help="image (with digest) the step runs in, part of the cache key")
    return parser


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ConveyorError(f"--param {item!r} is not NAME=JSON")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw  # a bare string, as engines' UIs hand them over
    return out


def run_step_command(args: argparse.Namespace) -> int:
    """Run one step as ``args`` say; returns the exit code."""
    os.environ[ENTRYPOINT_ENV] = "1"
    root = os.environ.get(ENV_SOURCE_ROOT)
    for folder in (os.getcwd(), root):
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
    from conveyor._repository import Repository
    from conveyor.ir import load_deployment
    from conveyor.runtime._executor import RunEnvironment, execute_step, finalize_run
    from conveyor.stack import Stack
    from conveyor.stores import RunStatus

    if args.store_url:
        os.environ[ENV_STORE_URL] = args.store_url
    if os.environ.get(ENV_STORE_URL):
        from conveyor.stores._metadata import MetadataStore

        store = MetadataStore(os.environ[ENV_STORE_URL])
    else:
        store = Repository.current().store()
    try:
        deployment = load_deployment(store.get_deployment_json(args.deployment))
    except ValueError as exc:
        raise ConveyorError(str(exc)) from None
    overrides = _overrides(args.param)
    unknown = set(overrides) - set(deployment.pipeline.parameters)
    if unknown:
        raise ConveyorError(f"--param {sorted(unknown)[0]!r} is not a parameter of pipeline {deployment.pipeline.name!r}")
    try:
        deployment.pipeline.step(args.step)
    except KeyError:
        raise ConveyorError(f"pipeline {deployment.pipeline.name!r} has no step {args.step!r}") from None
    stack = Stack(deployment.stack)
    if args.run_id:
        run = store.get_run(args.run_id)
    else:
        from conveyor.orchestrators._base import make_run_name
        from conveyor.stores._metadata import now

        pipeline = store.get_or_create_pipeline(deployment.pipeline.name)
        run = store.get_or_create_run(
            args.run_key,
            name=make_run_name(deployment.pipeline.name, deployment.run_name),
            pipeline_id=pipeline.id,
            deployment_id=deployment.id,
            status=RunStatus.RUNNING,
            started=now(),
            parameters={**deployment.pipeline.parameters, **overrides},
            stack_name=stack.name,
            orchestrator=deployment.stack.components["orchestrator"].flavor,
            orchestrator_run_id=args.orchestrator_run_id,
        )
    env = RunEnvironment(store=store, stack=stack, deployment=deployment, run=run, overrides=overrides, image=args.image)
    remote = args.run_key is not None
    try:
        execute_step(env, args.step)
    except KeyboardInterrupt:
        # The engine stopped this task (SIGTERM or SIGINT): the step run is
        # recorded as stopped; a run no orchestrator process owns would
        # otherwise stay "running" forever.
        if remote:
            from conveyor.stores._metadata import now

            store.update_run(run.id, only_if_status=RunStatus.RUNNING, status=RunStatus.FAILED, ended=now(),
                             error=f"step {args.step!r} was stopped by its engine")
        print(f"conveyor: step {args.step!r} was stopped", file=sys.stderr)
        return 130
    except StepFailedError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        if remote:
            record = next(r for r in store.list_step_runs(run.id) if r.step_id == args.step)
            if record.attempts > deployment.pipeline.step(args.step).settings.retries:
                finalize_run(env, failed_step=args.step)
        return 1
    if remote:
        finalize_run(env)
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entrypoint command line; returns the exit code."""
    import signal

    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return run_step_command(args)
    except ConveyorError as exc:
        print(f"conveyor: error: {exc}", file=sys.stderr)
        return 2
