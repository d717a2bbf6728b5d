"""The local orchestrator end to end: statuses, parallelism, retries, failures, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.exceptions import StepFailedError
from conveyor_testing.conformance import CASES, artifact_hashes, check_run, run_case
from tests_support import write_module


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conformance_thread_and_process_mode_agree(repo: Path, examples_path: Path, case) -> None:
    client = Client()
    client.register_component("orchestrator", "processes", "local", {"mode": "process"})
    client.register_stack("processes", {"orchestrator": "processes", "artifact_store": "default"})
    in_threads = run_case(case)
    check_run(case, in_threads)
    in_processes = run_case(case, stack="processes")
    check_run(case, in_processes)
    assert artifact_hashes(in_processes) == artifact_hashes(in_threads)
    assert in_processes.orchestrator == "local"


PARALLEL = """
import os, time
from pathlib import Path
from conveyor import pipeline, step

@step
def arrive(folder: str, name: str) -> str:
    # Each step waits until the other has arrived: only steps that run at
    # the same time can both finish.
    Path(folder, name).touch()
    other = "b" if name == "a" else "a"
    for _ in range(200):
        if Path(folder, other).exists():
            return name
        time.sleep(0.05)
    raise TimeoutError(f"{other} never ran alongside {name}")

@pipeline
def together(folder: str) -> None:
    arrive(folder, "a")
    arrive(folder, "b")
"""


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_independent_steps_run_at_the_same_time(repo: Path, mode: str) -> None:
    write_module(repo, "parallel_pipe", PARALLEL)
    sys.path.insert(0, str(repo))
    try:
        import parallel_pipe

        Client().update_component("orchestrator", "default", {"mode": mode})
        run = parallel_pipe.together.with_options(enable_cache=False)(str(repo))
    finally:
        sys.path.remove(str(repo))
    assert {s.status for s in run.steps.values()} == {"completed"}


FLAKY = """
from pathlib import Path
from conveyor import pipeline, step

@step(retries=2)
def flaky(marker: str) -> int:
    path = Path(marker)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < 1:
        raise RuntimeError("first attempt fails")
    return count

@pipeline(enable_cache=False)
def retrying(marker: str) -> None:
    flaky(marker)
"""


def test_retries_rerun_a_failing_step(repo: Path) -> None:
    write_module(repo, "flaky_pipe", FLAKY)
    sys.path.insert(0, str(repo))
    try:
        import flaky_pipe

        run = flaky_pipe.retrying(str(repo / "count"))
    finally:
        sys.path.remove(str(repo))
    step_run = run.steps["flaky"]
    assert step_run.status == "completed"
    assert step_run.attempts == 2
    assert step_run.output.load() == 1


def test_a_failing_step_fails_the_run_and_skips_its_downstream(repo: Path, examples_path: Path) -> None:
    import failing_step

    with pytest.raises(StepFailedError, match="step 'explode' failed: ValueError: bad input 3"):
        failing_step.failing_step()
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed"
    assert "bad input 3" in run.error
    explode = run.steps["explode"]
    assert explode.status == "failed"
    logs = explode.logs()
    assert "about to fail" in logs and "Traceback" in logs and "ValueError: bad input 3" in logs
    assert run.steps["after_explode"].status == "skipped"
    assert run.steps["independent"].status == "completed"
    assert explode.outputs == {}


HALF = """
from typing import Annotated
from conveyor import BaseMaterializer, pipeline, step

class Broken:
    pass

class BrokenMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Broken,)
    def save(self, data):
        with self.open("part.bin", "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

@step
def two() -> tuple[Annotated[int, "fine"], Annotated[Broken, "broken"]]:
    return 1, Broken()

@pipeline(enable_cache=False)
def half() -> None:
    two()
"""


def test_a_failed_save_leaves_nothing_half_written(repo: Path) -> None:
    write_module(repo, "half_pipe", HALF)
    sys.path.insert(0, str(repo))
    try:
        import half_pipe

        with pytest.raises(StepFailedError, match="disk full"):
            half_pipe.half()
    finally:
        sys.path.remove(str(repo))
    run = Client().get_pipeline("half").last_run
    assert run.steps["two"].status == "failed"
    step_folder = repo / ".conveyor" / "artifacts" / "half" / "two" / run.name
    assert sorted(p.name for p in step_folder.iterdir()) == ["logs.txt"]
    assert Client().list_artifacts() == []


def test_a_type_without_materializer_fails_before_any_step_runs(repo: Path) -> None:
    write_module(
        repo,
        "nomat_pipe",
        textwrap.dedent("""
        from conveyor import pipeline, step

        class Opaque:
            pass

        @step
        def first() -> int:
            return 1

        @step
        def make(x: int) -> Opaque:
            return Opaque()

        @pipeline
        def nomat() -> None:
            make(first())
    """),
    )
    sys.path.insert(0, str(repo))
    try:
        import nomat_pipe

        from conveyor.exceptions import MaterializerError

        with pytest.raises(
            MaterializerError, match="no materializer for output 'output' of step 'make' of type nomat_pipe.Opaque"
        ):
            nomat_pipe.nomat()
    finally:
        sys.path.remove(str(repo))
    assert Client().list_runs() == []


def test_step_context_and_parameters_are_recorded(repo: Path, examples_path: Path) -> None:
    import quickstart

    run = quickstart.quickstart(n=6)
    assert run.parameters == {"n": 6}
    assert run.steps["load_data"].parameters == {"n": 6}
    assert run.steps["split"].source == "quickstart:split"
    assert len(run.steps["split"].code_hash) == 32
    even = run.steps["split"].outputs["even"]
    assert even.producer.id == run.steps["split"].id
    assert [c.step_id for c in even.consumers] == ["total"]
    assert even.name == "quickstart::split::even" and even.version == 1
    assert run.steps["total"].output.name == "quickstart::total::output"
    assert "splitting 6 numbers" in run.steps["split"].logs()
    latest = Client().get_pipeline("quickstart").last_run
    assert latest.id == run.id


def test_code_version_is_recorded_from_git(repo: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    write_module(
        repo,
        "gitpipe",
        "from conveyor import pipeline, step\n@step\ndef one() -> int:\n    return 1\n@pipeline\ndef gp() -> None:\n    one()\n",
    )
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "add", "gitpipe.py"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=repo, check=True, env=env)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    sys.path.insert(0, str(repo))
    try:
        import gitpipe

        run = gitpipe.gp()
        assert (run.code_commit, run.code_dirty) == (commit, False)
        (repo / "gitpipe.py").write_text((repo / "gitpipe.py").read_text() + "# edit\n")
        run = gitpipe.gp()
        assert (run.code_commit, run.code_dirty) == (commit, True)
    finally:
        sys.path.remove(str(repo))


SCRIPT = """
import sys, time
from conveyor import pipeline, step

@step
def slow(marker: str) -> int:
    open(marker, "w").close()
    time.sleep(60)
    return 1

@pipeline(enable_cache=False)
def slowpipe(marker: str) -> None:
    slow(marker)

if __name__ == "__main__":
    slowpipe(sys.argv[1])
"""


def _start_and_wait(repo: Path) -> subprocess.Popen[bytes]:
    (repo / "slow_script.py").write_text(SCRIPT)
    marker = repo / "started"
    proc = subprocess.Popen([sys.executable, "slow_script.py", str(marker)], cwd=repo, env=dict(os.environ))
    for _ in range(300):
        if marker.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the step never started")


def test_ctrl_c_marks_the_run_stopped(repo: Path) -> None:
    proc = _start_and_wait(repo)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) != 0
    run = Client().get_pipeline("slowpipe").last_run
    assert run.status == "stopped"
    assert run.steps["slow"].status == "stopped"


def test_a_killed_run_is_marked_failed_when_the_store_is_next_opened(repo: Path) -> None:
    proc = _start_and_wait(repo)
    proc.kill()
    proc.wait(timeout=30)
    run = Client().get_pipeline("slowpipe").last_run
    assert run.status == "failed"
    assert "ended without finishing" in run.error
    assert run.steps["slow"].status == "failed"


def test_eight_processes_share_one_sqlite_store(repo: Path, examples_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fan_out;"
        "run = fan_out.fan_out.with_options(enable_cache=False)(width=4); print(run.status)"
    )
    # No store exists yet: the eight processes also race to create it.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(examples_path)], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1].decode()[-500:] for o in outputs]
    assert [o[0].decode().strip() for o in outputs] == ["completed"] * 8
    runs = Client().list_runs("fan_out")
    assert len(runs) == 8 and {r.status for r in runs} == {"completed"}
    assert len(Client().list_artifacts("values")) == 8


def test_timeout_stops_a_step(repo: Path) -> None:
    write_module(
        repo,
        "timeout_pipe",
        textwrap.dedent("""
        import time
        from conveyor import pipeline, step

        @step(timeout=1)
        def sleepy() -> int:
            time.sleep(30)
            return 1

        @pipeline(enable_cache=False)
        def timing() -> None:
            sleepy()
    """),
    )
    sys.path.insert(0, str(repo))
    try:
        import timeout_pipe

        with pytest.raises(StepFailedError, match="timed out after 1 s"):
            timeout_pipe.timing()
    finally:
        sys.path.remove(str(repo))
    run = Client().get_pipeline("timing").last_run
    assert run.steps["sleepy"].status == "failed"
    assert run.status == "failed"


def test_the_step_entrypoint_records_a_step_its_engine_stops(repo: Path) -> None:
    """An engine that kills a task (SIGTERM) leaves a stopped step, skipped steps after it and a failed run."""
    with_downstream = SCRIPT.replace("    slow(marker)\n", "    report(slow(marker))\n").replace(
        "@pipeline", "@step\ndef report(n: int) -> int:\n    return n\n\n@pipeline"
    )
    (repo / "slow_script.py").write_text(with_downstream)
    sys.path.insert(0, str(repo))
    try:
        import slow_script

        from conveyor import deployment_for
        from conveyor.orchestrators import LaunchContext

        deployment, stack, _ = deployment_for(slow_script.slowpipe, parameters={"marker": str(repo / "started")})
        stack.orchestrator.prepare(deployment, LaunchContext(store=Client().store, stack=stack, source_root=repo))
    finally:
        sys.path.remove(str(repo))
    env = {**os.environ, "CONVEYOR_SOURCE_ROOT": str(repo)}
    cmd = [
        sys.executable,
        "-m",
        "conveyor.runtime",
        "run-step",
        "--deployment",
        deployment.id,
        "--step",
        "slow",
        "--run-key",
        "engine:run-1",
    ]
    proc = subprocess.Popen(cmd, cwd=repo, env=env)
    for _ in range(300):
        if (repo / "started").exists():
            break
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=30) == 130
    run = Client().get_pipeline("slowpipe").last_run
    assert (run.status, run.steps["slow"].status, run.steps["report"].status) == ("failed", "stopped", "skipped")
    assert "stopped by its engine" in run.error


def test_finish_run_settles_a_run_its_engine_ended(repo: Path, examples_path: Path) -> None:
    """An engine's exit handler: steps that never started are skipped and the run failed."""
    import quickstart

    from conveyor import deployment_for
    from conveyor.orchestrators import LaunchContext
    from conveyor.runtime import main

    deployment, stack, _ = deployment_for(quickstart.quickstart, parameters={"n": 4})
    stack.orchestrator.prepare(deployment, LaunchContext(store=Client().store, stack=stack, source_root=examples_path))
    os.environ["CONVEYOR_SOURCE_ROOT"] = str(examples_path)
    try:
        assert main(["run-step", "--deployment", deployment.id, "--step", "load_data", "--run-key", "engine:7"]) == 0
        assert main(["finish-run", "--deployment", deployment.id, "--run-key", "engine:7"]) == 0
    finally:
        del os.environ["CONVEYOR_SOURCE_ROOT"]
        os.environ.pop("CONVEYOR_STEP_ENTRYPOINT", None)
    run = Client().get_pipeline("quickstart").last_run
    assert run.status == "failed"
    assert {sid: s.status for sid, s in run.steps.items()} == {
        "load_data": "completed",
        "split": "skipped",
        "total": "skipped",
        "total_2": "skipped",
    }
    assert "before step 'split' finished" in run.error


HUNGRY = """
import subprocess, sys, time
from conveyor import pipeline, step
from conveyor.ir import ResourceSettings

GROW = "import time; b = bytearray({size} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"


@step(resources=ResourceSettings(memory="300Mi"))
def modest() -> int:
    return len(bytearray(20 * 2**20))


@step(resources=ResourceSettings(memory="300Mi"))
def hungry(in_child: bool) -> int:
    if in_child:  # the limit holds for what the step starts, too
        subprocess.run([sys.executable, "-c", GROW.format(size=600)], check=True)
    block = bytearray(600 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touched, so it is resident
    time.sleep(30)
    return len(block)


@pipeline(enable_cache=False)
def within() -> None:
    modest()


@pipeline(enable_cache=False)
def over(in_child: bool = False) -> None:
    hungry(in_child)
"""


@pytest.mark.parametrize("in_child", [False, True], ids=["step", "its child"])
def test_a_step_over_its_memory_limit_is_killed_with_one_line(repo: Path, in_child: bool) -> None:
    """Thread mode (the default stack) still gives a step with a memory limit a process of its own, and holds it."""
    write_module(repo, "hungry_pipe", HUNGRY)
    import hungry_pipe

    assert hungry_pipe.within().status == "completed"
    started = time.monotonic()
    with pytest.raises(StepFailedError, match=r"went over its memory limit \(300Mi: \d+ MiB resident\) and was killed"):
        hungry_pipe.over(in_child=in_child)
    assert time.monotonic() - started < 20, "killed at the limit, not after the step's sleep"
    step = Client().get_pipeline("over").last_run.steps["hungry"]
    assert step.status == "failed"
    assert "went over its memory limit (300Mi" in step.error


CHATTY = """
import sys
from conveyor import pipeline, step


@step
def chatter(name: str) -> int:
    for i in range(300):
        print(name, "says", i, "of", 300)  # five writes and a newline per line
        sys.stdout.write(f"{name} half a line ")
        sys.stdout.write("and the rest\\n")
    print(name, "ends without a newline", end="")
    return 0


@pipeline(enable_cache=False)
def chatty() -> None:
    for name in ("ann", "bob", "cid"):
        chatter(name)
"""


def test_steps_side_by_side_reach_the_terminal_a_whole_line_at_a_time(
    repo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import re

    write_module(repo, "chatty_pipe", CHATTY)
    import chatty_pipe

    assert chatty_pipe.chatty().status == "completed"  # thread mode: three steps in one process at once
    out, _ = capfd.readouterr()
    speaker: dict[str, str] = {}  # step id -> the name its lines carry
    counts: dict[str, int] = {}
    for line in out.splitlines():
        found = re.match(r"\[(chatter(?:_\d)?)\] (.*)", line)
        if found is None:
            continue
        step, text = found.groups()
        name = speaker.setdefault(step, text.split(" ", 1)[0])
        pattern = rf"{name} says \d+ of 300|{name} half a line and the rest|{name} ends without a newline"
        assert re.fullmatch(pattern, text), f"a line mixes steps: {line!r}"
        counts[step] = counts.get(step, 0) + 1
    assert sorted(speaker.values()) == ["ann", "bob", "cid"]
    assert counts == {step: 601 for step in speaker}
