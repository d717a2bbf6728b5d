"""Compiling deployments into bash scripts: golden files, the exact step commands bash runs, and hostile values.

The scripts are run by bash with a recorder in place of the step
interpreter: it writes down the argv and environment bash hands it, so a test
sees exactly what a step process would get, without running any step.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError
from conveyor.ir import ComponentIR, Deployment, PipelineIR, StackIR, StepIR, StepSettings
from conveyor.runtime import finish_command, step_command
from conveyor_template import RUN_ID_ENV, RUN_KEY_PREFIX, compile_script
from conveyor_testing import assert_golden
from conveyor_testing.conformance import CASES, case, load_pipeline
from conveyor_testing.strategies import hostile_text, names

GOLDEN = Path(__file__).parent / "golden"
STACK = StackIR(
    name="on_template",
    components={
        "orchestrator": ComponentIR(type="orchestrator", flavor="template", name="sh"),
        "artifact_store": ComponentIR(type="artifact_store", flavor="local", name="default", config={"path": "/srv/a"}),
    },
)
MACHINE = {"python": "/opt/conveyor/bin/python", "store_url": "sqlite:////srv/conveyor.db", "source_root": "/srv/code"}

# Stands in for the step interpreter (a POSIX shell starts in a millisecond, Python in tens): writes
# down its argv and the two variables the script exports, NUL-separated, and exits with FAIL_CODE
# for the step FAIL_STEP (0 otherwise). Asked for a run id (``-c ...``), it prints one.
RECORDER = """\
#!/bin/sh
if [ "$1" = "-c" ]; then echo made-run-id; exit 0; fi
printf '%s\\0' "$#" "$@" "${CONVEYOR_STORE_URL+set}" "${CONVEYOR_STORE_URL-}" \\
  "${CONVEYOR_SOURCE_ROOT+set}" "${CONVEYOR_SOURCE_ROOT-}" >> "$RECORD"
code=0
previous=
for arg in "$@"; do
  if [ "$previous" = --step ] && [ "$arg" = "${FAIL_STEP-}" ]; then code=$FAIL_CODE; fi
  previous=$arg
done
exit "$code"
"""


def deployment_of(c: Any) -> Deployment:
    return Deployment(pipeline=load_pipeline(c).trace(**c.params), stack=STACK)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_scripts_match_their_golden_files(name: str) -> None:
    compiled = compile_script(deployment_of(case(name)), **MACHINE)
    assert_golden(GOLDEN / f"{name}.sh", compiled.source)
    assert compiled.filename == f"{case(name).pipeline}.sh"


def test_compiling_twice_gives_the_same_bytes() -> None:
    dep = deployment_of(case("fan_out"))
    assert compile_script(dep, **MACHINE).source == compile_script(dep, **MACHINE).source


def recorder(folder: Path, name: str = "python") -> Path:
    """An executable at ``folder/name`` that records how bash called it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(RECORDER)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def read_calls(record: Path) -> list[dict[str, Any]]:
    """The recorder's calls: ``{"argv": [...], "env": {name: value or None}}`` each."""
    if not record.exists():
        return []
    fields = record.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1]
    calls = []
    while fields:
        count = int(fields[0])
        argv, rest = fields[1 : 1 + count], fields[1 + count :]
        env = {
            "CONVEYOR_STORE_URL": rest[1] if rest[0] else None,
            "CONVEYOR_SOURCE_ROOT": rest[3] if rest[2] else None,
        }
        calls.append({"argv": argv, "env": env})
        fields = rest[4:]
    return calls


def run_script(source: str, tmp: Path, fail: tuple[str, int] | None = None, run_id: str | None = "r-1") -> Any:
    """Run a compiled script with bash; returns (exit code, the recorded calls)."""
    script, record = tmp / "run.sh", tmp / "record"
    script.write_text(source, encoding="utf-8")
    record.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["RECORD"] = str(record)
    if fail is not None:
        env.update(FAIL_STEP=fail[0], FAIL_CODE=str(fail[1]))
    if run_id is not None:
        env[RUN_ID_ENV] = run_id
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, read_calls(record)


def started(calls: list[Any]) -> list[str]:
    """The step of each recorded call, in order (``finish-run`` for the finish command)."""
    return [c["argv"][c["argv"].index("--step") + 1] if "--step" in c["argv"] else c["argv"][2] for c in calls]


def test_bash_runs_exactly_each_steps_command_in_order_then_the_finish_command(tmp_path: Path) -> None:
    dep = deployment_of(case("fan_out"))
    python = str(recorder(tmp_path / "bin"))
    code, calls = run_script(compile_script(dep, **{**MACHINE, "python": python}).source, tmp_path)
    assert code == 0
    run = {"run_key": RUN_KEY_PREFIX + "r-1", "orchestrator_run_id": "r-1", "python": python}
    expected = [step_command(dep.id, s.id, **run) for s in dep.pipeline.steps] + [finish_command(dep.id, **run)]
    assert [[python, *c["argv"]] for c in calls] == expected
    machine = {"CONVEYOR_STORE_URL": MACHINE["store_url"], "CONVEYOR_SOURCE_ROOT": MACHINE["source_root"]}
    assert all(c["env"] == machine for c in calls)


def test_without_a_run_id_the_script_makes_one(tmp_path: Path) -> None:
    dep = deployment_of(case("quickstart"))
    python = str(recorder(tmp_path / "bin"))
    code, calls = run_script(compile_script(dep, python=python).source, tmp_path, run_id=None)
    assert code == 0
    assert all(RUN_KEY_PREFIX + "made-run-id" in c["argv"] for c in calls)
    assert all(c["env"] == {"CONVEYOR_STORE_URL": None, "CONVEYOR_SOURCE_ROOT": None} for c in calls)


def test_a_failed_step_is_retried_its_downstream_never_starts_and_other_branches_run(tmp_path: Path) -> None:
    dep = deployment_of(case("failing_step"))
    steps = [
        s.model_copy(update={"settings": StepSettings(retries=2)}) if s.id == "explode" else s
        for s in dep.pipeline.steps
    ]
    dep = dep.model_copy(update={"pipeline": dep.pipeline.model_copy(update={"steps": tuple(steps)})})
    python = str(recorder(tmp_path / "bin"))
    code, calls = run_script(compile_script(dep, python=python).source, tmp_path, fail=("explode", 1))
    assert code == 1
    assert started(calls) == ["start", "explode", "explode", "explode", "independent", "finish-run"]


def test_a_step_whose_command_is_wrong_is_not_retried(tmp_path: Path) -> None:
    dep = deployment_of(case("quickstart"))  # load_data has retries=1
    python = str(recorder(tmp_path / "bin"))
    code, calls = run_script(compile_script(dep, python=python).source, tmp_path, fail=("load_data", 2))
    assert code == 1
    assert started(calls) == ["load_data", "finish-run"]


def test_a_nul_in_a_path_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="NUL") as info:
        compile_script(deployment_of(case("quickstart")), python="/bin/py\x00thon")
    assert "\n" not in str(info.value)


# -- hostile values ----------------------------------------------------------------------------
no_nul = hostile_text().map(lambda t: t.replace("\x00", ""))
# A file name bash can be handed: no "/", not "." or "..", at most 200 bytes.
file_name = (
    hostile_text()
    .map(lambda t: t.replace("\x00", "").replace("/", "_").encode("utf-8")[:200].decode("utf-8", "ignore"))
    .filter(lambda t: t not in ("", ".", ".."))
)


@st.composite
def hostile_deployments(draw: Any) -> Deployment:
    ids = draw(st.lists(names(), min_size=1, max_size=3, unique=True))
    steps = tuple(
        StepIR(
            id=sid,
            name=draw(names()),
            source=f"m:{draw(no_nul)}",
            code_hash="0",
            after=tuple(ids[:i][-1:]),
            settings=StepSettings(retries=draw(st.integers(0, 2)), environment={"X": draw(no_nul)}),
        )
        for i, sid in enumerate(ids)
    )
    return Deployment(pipeline=PipelineIR(name=draw(names()), steps=steps), stack=STACK)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dep=hostile_deployments(), python_name=file_name, store_url=no_nul, source_root=no_nul, run_id=no_nul)
def test_no_name_path_or_url_becomes_shell_code(
    dep: Deployment, python_name: str, store_url: str, source_root: str, run_id: str, tmp_path: Path
) -> None:
    python = str(recorder(tmp_path / "bin", python_name))
    source = compile_script(dep, python=python, store_url=store_url, source_root=source_root).source
    code, calls = run_script(source, tmp_path, run_id=run_id or None)
    assert code == 0
    made = run_id or "made-run-id"
    run = {"run_key": RUN_KEY_PREFIX + made, "orchestrator_run_id": made, "python": python}
    expected = [step_command(dep.id, s.id, **run) for s in dep.pipeline.steps] + [finish_command(dep.id, **run)]
    assert [[python, *c["argv"]] for c in calls] == expected
    for c in calls:
        assert c["env"] == {"CONVEYOR_STORE_URL": store_url or None, "CONVEYOR_SOURCE_ROOT": source_root or None}
