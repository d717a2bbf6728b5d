"""The exit task's command, run as a pod would run it: it settles a run no step could finish."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from kfp_test_support import launch_quickstart, register_pushed_stack


def _exit_task_argv(repo: Path) -> list[str]:
    [path] = launch_quickstart("export", repo / "out")
    spec = next(yaml.safe_load_all(path.read_text()))
    container = spec["deploymentSpec"]["executors"]["exec-conveyor-finish-run"]["container"]
    argv = [sys.executable, *container["command"][1:], *container["args"]]
    # What KFP puts in for the placeholders: the run's id, and the parameter as KFP spells it.
    out = []
    for arg in argv:
        arg = arg.replace('{"Concat": ["kfp:", "{{$.inputs.parameters[\'conveyor_run_id\']}}"]}', "kfp:run-1")
        arg = arg.replace("{{$.inputs.parameters['conveyor_run_id']}}", "run-1")
        arg = arg.replace('{"Concat": ["n=", "{{$.inputs.parameters[\'n\']}}"]}', "n=20.0")
        out.append(arg)
    return out


def test_exit_task_fails_a_run_whose_steps_never_started(repo: Path) -> None:
    from conveyor import Client

    register_pushed_stack(None)
    argv = _exit_task_argv(repo)
    env = dict(os.environ, CONVEYOR_STORE_URL=f"sqlite:///{repo / '.conveyor' / 'conveyor.db'}")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr

    run = Client().get_pipeline("quickstart").last_run
    assert run.status == "failed"
    assert run.record.run_key == "kfp:run-1" and run.orchestrator_run_id == "run-1"
    assert "before step 'load_data' finished" in run.record.error
    assert {s.status for s in run.steps.values()} == {"skipped"} and len(run.steps) == 4
    # KFP hands numbers over as floats; the run keeps the parameter as the pipeline had it.
    assert run.parameters == {"n": 20} and type(run.parameters["n"]) is int

    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert Client().get_pipeline("quickstart").last_run.record.error == run.record.error
