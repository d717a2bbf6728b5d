"""Command line of the step entrypoint.

``python -m conveyor.runtime run-step --deployment ID --step STEP (--run-id ID | --run-key KEY)``
runs one step of a stored deployment in this process. Engines pass their own
run identifier as ``--run-key`` (``airflow:<dag run id>``); the first step to
start creates the conveyor run, the others join it.

``python -m conveyor.runtime finish-run --deployment ID --run-key KEY`` settles
a run after its engine ended it (an exit handler): steps the engine never
started are recorded skipped, steps whose process died failed, and the run
failed unless every step succeeded.

Exit codes: 0 the step completed or was cached (``finish-run``: the run is
settled), 1 the step failed, 2 the command or its setup is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.constants import ENV_PARENT_PID, ENV_SERVER, ENV_SOURCE_ROOT, ENV_STORE_URL
from conveyor.dsl import ENTRYPOINT_ENV
from conveyor.exceptions import ConveyorError, RunSettledError, StepFailedError


def _command(
    subcommand: str,
    deployment_id: str,
    python: str,
    *,
    step_id: str | None = None,
    run_id: str | None = None,
    run_key: str | None = None,
    image: str | None = None,
    params: Mapping[str, str] | None = None,
    params_json: str | None = None,
    orchestrator_run_id: str | None = None,
    store_url: str | None = None,
) -> list[str]:
    cmd = [python, "-m", "conveyor.runtime", subcommand, "--deployment", deployment_id]
    if step_id is not None:
        cmd += ["--step", step_id]
    if run_id is not None:
        cmd += ["--run-id", run_id]
    if run_key is not None:
        cmd += ["--run-key", run_key]
    if image is not None:
        cmd += ["--image", image]
    for name in sorted(params or {}):
        cmd += ["--param", f"{name}={(params or {})[name]}"]
    if params_json is not None:
        cmd += ["--params", params_json]
    if orchestrator_run_id is not None:
        cmd += ["--orchestrator-run-id", orchestrator_run_id]
    if store_url is not None:
        cmd += ["--store-url", store_url]
    return cmd


def step_command(
    deployment_id: str,
    step_id: str,
    *,
    run_id: str | None = None,
    run_key: str | None = None,
    image: str | None = None,
    params: Mapping[str, str] | None = None,
    params_json: str | None = None,
    orchestrator_run_id: str | None = None,
    store_url: str | None = None,
    python: str = "python",
) -> list[str]:
    """The argv that runs one step of a stored deployment: what every engine's task runs.

    Engines that substitute their own values at run time (a run id, a
    parameter) pass their placeholders as the values; they are rendered as
    whole arguments.

    Args:
        deployment_id: the stored deployment.
        step_id: the step invocation id.
        run_id: an existing conveyor run (the local orchestrator family), or
        run_key: the engine's run identifier; the first step to start creates
            the conveyor run, later steps join it. Exactly one of the two.
        image: the image (with digest) the step runs in; part of its cache key.
        params: pipeline parameter overrides, ``{name: JSON text}`` (a bare
            string, or an engine placeholder, is taken as a string).
        params_json: pipeline parameter overrides as one JSON object (or
            ``null``): an engine placeholder for the parameters a run was
            started with (Airflow's ``dag_run.conf``); names it does not
            know are refused by the step command.
        orchestrator_run_id: the engine's id of the run, recorded with it.
        store_url: the metadata store, when the process does not get it from
            ``CONVEYOR_STORE_URL`` (never with a password in it).
        python: the interpreter.

    Raises:
        ValueError: neither or both of ``run_id`` and ``run_key``.
    """
    if (run_id is None) == (run_key is None):
        raise ValueError("give exactly one of run_id and run_key")
    return _command(
        "run-step",
        deployment_id,
        python,
        step_id=step_id,
        run_id=run_id,
        run_key=run_key,
        image=image,
        params=params,
        params_json=params_json,
        orchestrator_run_id=orchestrator_run_id,
        store_url=store_url,
    )


def finish_command(
    deployment_id: str,
    *,
    run_key: str,
    params: Mapping[str, str] | None = None,
    params_json: str | None = None,
    orchestrator_run_id: str | None = None,
    store_url: str | None = None,
    python: str = "python",
) -> list[str]:
    """The argv that settles a run after its engine ended it (an exit handler's task).

    Steps the engine never started are recorded skipped, steps whose process
    died failed, and the run failed unless every step succeeded. Arguments
    as for :func:`step_command`.
    """
    return _command(
        "finish-run",
        deployment_id,
        python,
        run_key=run_key,
        params=params,
        params_json=params_json,
        orchestrator_run_id=orchestrator_run_id,
        store_url=store_url,
    )


_PARAMS_HELP = "pipeline parameter overrides as one JSON object (null: none)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conveyor.runtime", description="conveyor's step entrypoint")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-step", help="run one step of a stored deployment")
    run.add_argument("--deployment", required=True, help="deployment id")
    run.add_argument("--step", required=True, help="step invocation id")
    group = run.add_mutually_exclusive_group(required=True)
    group.add_argument("--run-id", help="id of an existing conveyor run")
    group.add_argument("--run-key", help="the engine's run identifier; the conveyor run is created on first use")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=JSON", help="override a pipeline parameter (JSON value)"
    )
    run.add_argument("--params", metavar="JSON", help=_PARAMS_HELP)
    run.add_argument("--orchestrator-run-id", help="the engine's id of this run, recorded with the conveyor run")
    run.add_argument("--store-url", help=f"metadata store URL (default: ${ENV_STORE_URL} or the repository's)")
    run.add_argument("--image", help="image (with digest) the step runs in, part of the cache key")
    finish = sub.add_parser("finish-run", help="settle a run's status after its engine ended it")
    finish.add_argument("--deployment", required=True, help="deployment id")
    finish.add_argument("--run-key", required=True, help="the engine's run identifier")
    finish.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a pipeline parameter the run had (JSON value)",
    )
    finish.add_argument("--params", metavar="JSON", help=_PARAMS_HELP)
    finish.add_argument("--orchestrator-run-id", help="the engine's id of this run")
    finish.add_argument("--store-url", help=f"metadata store URL (default: ${ENV_STORE_URL} or the repository's)")
    return parser


def _param_items(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(name, JSON text)`` of each ``--param NAME=JSON``, then of each entry of ``--params`` (a JSON object)."""
    items: list[tuple[str, str]] = []
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ConveyorError(f"--param {item!r} is not NAME=JSON")
        items.append((name, raw))
    if args.params is None:
        return items
    try:
        data = json.loads(args.params)
    except json.JSONDecodeError:
        raise ConveyorError(f"--params is not JSON: {args.params[:200]!r}") from None
    if data is None:
        return items
    if not isinstance(data, dict):
        raise ConveyorError(f"--params must be a JSON object of pipeline parameters, not {type(data).__name__}")
    items += [(name, json.dumps(value)) for name, value in data.items()]
    return items


def _overrides(items: Sequence[tuple[str, str]], recorded: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in items:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string, as engines' UIs hand them over
        default = recorded.get(name)
        if isinstance(default, str) and not isinstance(value, str):
            value = raw  # a string parameter whose text happens to read as JSON ("3", "true")
        elif _same_value(value, default):
            # Engines hand numbers over as floats (KFP: 20 -> "20.0", [1, 2] -> "[1.0, 2.0]"):
            # the same value keeps the recorded spelling, and so the cache key.
            value = default
        out[name] = value
    return out


def _recordable(value: Any) -> bool:
    """Whether a run can record a parameter value: strict JSON whose text is UTF-8 (no NaN, no lone surrogate).

    An engine's run config may hold anything its YAML or JSON reader gives.
    """
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        return False
    return True


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    """The metadata store (``--store-url``, ``CONVEYOR_STORE_URL``, ``CONVEYOR_SERVER`` or the repository's) and the deployment."""
    from conveyor.ir import load_deployment

    if args.store_url:
        os.environ[ENV_STORE_URL] = args.store_url
    if os.environ.get(ENV_STORE_URL) or os.environ.get(ENV_SERVER):
        # Named by the engine: no repository is looked for or created in the task's folder.
        from conveyor.stores import open_store, store_target

        target = store_target(None)
        store = open_store(target.url, token=target.token)
    else:
        from conveyor._repository import Repository

        store = Repository.current().store()
    try:
        deployment = load_deployment(store.get_deployment_json(args.deployment))
    except ValueError as exc:
        raise ConveyorError(f"deployment {args.deployment!r} cannot be read: {str(exc).splitlines()[0]}") from None
    if deployment.pipeline.notebook is not None:
        # Notebook cells are code this process runs: only those of the deployment the engine named.
        if deployment.id != args.deployment:
            raise ConveyorError(
                f"deployment {args.deployment!r} in the store does not match its id",
                "deploy the pipeline again; the stored record was changed",
            )
        from conveyor._notebook import install_notebook_code

        try:
            install_notebook_code(deployment.pipeline.notebook)
        except Exception as exc:  # noqa: BLE001 - the user's cells, run in a fresh process
            raise ConveyorError(
                f"the notebook cells of pipeline {deployment.pipeline.name!r} fail outside the notebook: "
                f"{type(exc).__name__}: {exc}",
                "keep what steps need in imports, definitions and constants; data loading belongs in a step",
            ) from None
    return store, deployment


def _join_run(
    store: Any, deployment: Any, run_key: str, overrides: dict[str, Any], orchestrator_run_id: str | None
) -> Any:
    """The run of an engine's run key: created by whichever process asks first."""
    from conveyor.runtime._runs import start_run

    return start_run(store, deployment, run_key=run_key, parameters=overrides, orchestrator_run_id=orchestrator_run_id)


def run_step_command(args: argparse.Namespace) -> int:
    """Run one step as ``args`` say; returns the exit code."""
    os.environ[ENTRYPOINT_ENV] = "1"
    root = os.environ.get(ENV_SOURCE_ROOT)
    for folder in (os.getcwd(), root):
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
    from conveyor.ir import shown
    from conveyor.runtime._executor import RunEnvironment, execute_step, finalize_run, is_last_attempt
    from conveyor.runtime._logs import capture_file_descriptors
    from conveyor.stack import Stack

    store, deployment = _open(args)
    overrides = _overrides(_param_items(args), deployment.pipeline.parameters)
    unknown = set(overrides) - set(deployment.pipeline.parameters)
    if unknown:
        known = ", ".join(sorted(deployment.pipeline.parameters)) or "(none)"
        raise ConveyorError(
            f"{shown(sorted(unknown)[0])} is not a parameter of pipeline {deployment.pipeline.name!r} "
            f"(its parameters: {known})"
        )
    for name, value in overrides.items():
        if not _recordable(value):
            raise ConveyorError(
                f"parameter {shown(name)} of pipeline {deployment.pipeline.name!r} is {shown(value)}, "
                "which no run can record",
                "give finite numbers and text without lone surrogates",
            )
    try:
        deployment.pipeline.step(args.step)
    except KeyError:
        raise ConveyorError(f"pipeline {deployment.pipeline.name!r} has no step {args.step!r}") from None
    stack = Stack(deployment.stack)
    if args.run_id:
        store.scope_to_run(args.run_id)
        run = store.get_run(args.run_id)
    else:
        run = _join_run(store, deployment, args.run_key, overrides, args.orchestrator_run_id)
        # A server's runner key is good for joining runs only: the step goes on with a token of its run.
        store.scope_to_run(run.id)
    env = RunEnvironment(
        store=store,
        stack=stack,
        deployment=deployment,
        run=run,
        overrides=overrides,
        image=args.image,
        # Started by the local orchestrator: this step's lines share a terminal with its siblings'.
        prefix_output=bool(os.environ.get(ENV_PARENT_PID)),
    )
    remote = args.run_key is not None
    try:
        # This process runs one step: what its children write is the step's output too.
        with capture_file_descriptors():
            execute_step(env, args.step)
    except KeyboardInterrupt:
        # The engine stopped this task (SIGTERM or SIGINT): the step run is
        # recorded as stopped, the steps after it skipped; a run no
        # orchestrator process owns would otherwise stay "running" forever.
        if remote:
            from conveyor.runtime._hooks import FAILURE, run_step_hooks

            # Engines stop a step at its timeout this way too: the step failed, and this
            # process, which supervises it, runs its failure hooks before the run settles.
            run_step_hooks(store, deployment, run, args.step, FAILURE, error="stopped by its engine", stack=stack)
            finalize_run(env, failed_step=args.step, error=f"step {args.step!r} was stopped by its engine")
        print(f"conveyor: step {args.step!r} was stopped", file=sys.stderr)
        return 130
    except StepFailedError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        if remote:
            record = next(r for r in store.list_step_runs(run.id) if r.step_id == args.step)
            if is_last_attempt(deployment.pipeline.step(args.step), record.attempts):
                finalize_run(env, failed_step=args.step)
        return 1
    if remote:
        finalize_run(env)
    return 0


def finish_run_command(args: argparse.Namespace) -> int:
    """Settle the run of ``args.run_key`` after its engine ended it; returns the exit code.

    A run whose steps all succeeded is completed; otherwise steps the engine
    never started are recorded skipped, steps left running failed, and the run
    failed. A run already settled is left as it is.
    """
    from conveyor.runtime._runs import settle_after_engine

    store, deployment = _open(args)
    # No step may have started (an image that cannot be pulled): the run is made here then.
    overrides = _overrides(_param_items(args), deployment.pipeline.parameters)
    # What no step could take is left out, so that the run is still recorded and settled.
    overrides = {k: v for k, v in overrides.items() if k in deployment.pipeline.parameters and _recordable(v)}
    run = _join_run(store, deployment, args.run_key, overrides, args.orchestrator_run_id)
    try:
        store.scope_to_run(run.id)
    except RunSettledError:
        return 0  # settled long ago: nothing is left to do
    settle_after_engine(store, deployment, run)
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _end_with_parent(parent: int) -> None:
    """End this step process and its children as soon as the process that started it is gone.

    The parent is the local orchestrator's driver; when it is killed (SIGKILL,
    OOM), nothing of its run may go on running or registering artifacts.
    """
    import threading

    def end() -> None:
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)  # this process leads its group: its children go too
        os._exit(137)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        end()

    if os.getppid() != parent:
        end()
    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entrypoint command line; returns the exit code."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parent = os.environ.get(ENV_PARENT_PID)
    if parent and parent.isdigit():
        _end_with_parent(int(parent))
    try:
        if args.command == "finish-run":
            return finish_run_command(args)
        return run_step_command(args)
    except ConveyorError as exc:
        print(f"conveyor: error: {exc}", file=sys.stderr)
        return 2
