"""Compile a deployment into a bash script: a pure function, deterministic, no engine needed.

The script holds only the deployment id; each step runs the argv of
:func:`conveyor.runtime.step_command`, which loads the deployment from the
metadata store. The run's id is a marker in that argv, which the script fills
in when it runs. A step runs when every step it waits for succeeded; the step
command records the others skipped and settles the run, and the script ends
with :func:`conveyor.runtime.finish_command` for whatever it left unsettled.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.constants import ENV_SOURCE_ROOT, ENV_STORE_URL
from conveyor.exceptions import ConfigError
from conveyor.runtime import finish_command, step_command

if TYPE_CHECKING:
    from conveyor.ir import Deployment

RUN_KEY_PREFIX = "template:"
"""A script run's conveyor run key is ``template:<run id>``."""
RUN_ID_ENV = "CONVEYOR_TEMPLATE_RUN_ID"
"""The run id a script uses when its environment sets it (otherwise it makes one)."""

# Stands for the run id in the step command; NUL is in no name, path or URL a shell can hold.
_RUN_ID = "\x00run_id\x00"
_MAX_FILE_NAME_BYTES = 240


@dataclass(frozen=True)
class CompiledScript:
    """A compiled script: its text and the file name it is written under."""

    pipeline: str
    deployment_id: str
    filename: str
    source: str


def script_name(pipeline: str) -> str:
    """The file name of a pipeline's script: ``<pipeline>.sh``, cut and hashed when the name is too long for a file."""
    raw = pipeline.encode("utf-8")
    if len(raw) <= _MAX_FILE_NAME_BYTES:
        return f"{pipeline}.sh"
    cut = raw[: _MAX_FILE_NAME_BYTES - 13].decode("utf-8", "ignore")
    return f"{cut}-{hashlib.sha256(raw).hexdigest()[:12]}.sh"


def shell_word(arg: str) -> str:
    """One argument as bash reads it back unchanged; the run id marker becomes ``"$RUN_ID"``."""
    pieces = arg.split(_RUN_ID)
    return '"$RUN_ID"'.join(shlex.quote(p) if p else "" for p in pieces) or "''"


def shell_command(argv: Sequence[str]) -> str:
    """An argv as one line of bash."""
    return " ".join(shell_word(a) for a in argv)


def _comment(text: str) -> str:
    # ASCII only, no line break: a name in a comment stays a comment.
    return json.dumps(text, ensure_ascii=True)


def compile_script(
    deployment: Deployment, *, python: str, store_url: str | None = None, source_root: str | None = None
) -> CompiledScript:
    """The bash script that runs a deployment's steps one after another.

    Args:
        deployment: a stored deployment (the steps load it by id).
        python: the interpreter that runs the steps.
        store_url: the metadata store the steps use unless ``CONVEYOR_STORE_URL`` is set
            where the script runs (never with a password in it).
        source_root: the folder of the pipeline's code, unless ``CONVEYOR_SOURCE_ROOT`` is set.

    Raises:
        ConfigError: a path or URL holds a NUL, which no shell can pass on.
    """
    for what, value in (("python", python), ("store_url", store_url), ("source_root", source_root)):
        if value is not None and "\x00" in value:
            raise ConfigError(f"the {what} of the template orchestrator holds a NUL character", "remove it")
    pipeline = deployment.pipeline
    run_key = RUN_KEY_PREFIX + _RUN_ID
    index = {step.id: i for i, step in enumerate(pipeline.steps)}
    lines = [
        "#!/usr/bin/env bash",
        f"# conveyor pipeline {_comment(pipeline.name)}, deployment {deployment.id}:",
        "# its steps one after another, each through conveyor's step command.",
        "set -u",
        "trap 'exit 130' INT TERM",
        "",
        *_defaults(python, store_url, source_root),
        "",
        *_ATTEMPT,
        "",
        "failed=0",
    ]
    for i, step in enumerate(pipeline.steps):
        command = step_command(deployment.id, step.id, run_key=run_key, orchestrator_run_id=_RUN_ID, python=python)
        retries, delay = step.settings.retries, repr(float(step.settings.retry_delay))
        waits = " && ".join(f'[ "$ok_{index[up]}" = 1 ]' for up in step.upstream())
        lines += ["", f"# step {_comment(step.id)}", f"ok_{i}=0"]
        if waits:
            lines.append(f"if {waits}; then")
        indent = "  " if waits else ""
        lines.append(f"{indent}if attempt {retries} {delay} {shell_command(command)}; then")
        lines += [f"{indent}  ok_{i}=1", f"{indent}else", f"{indent}  failed=1", f"{indent}fi"]
        if waits:
            lines.append("fi")
    lines += [
        "",
        "# Settle what the steps left unsettled (a step that never started is recorded skipped).",
        shell_command(finish_command(deployment.id, run_key=run_key, orchestrator_run_id=_RUN_ID, python=python))
        + " || failed=1",
        'exit "$failed"',
        "",
    ]
    return CompiledScript(
        pipeline=pipeline.name,
        deployment_id=deployment.id,
        filename=script_name(pipeline.name),
        source="\n".join(lines),
    )


def _defaults(python: str, store_url: str | None, source_root: str | None) -> list[str]:
    lines = []
    for name, value in ((ENV_STORE_URL, store_url), (ENV_SOURCE_ROOT, source_root)):
        if value:
            lines.append(f'if [ -z "${{{name}:-}}" ]; then export {name}={shlex.quote(value)}; fi')
    lines += [
        f'RUN_ID="${{{RUN_ID_ENV}:-}}"',
        'if [ -z "$RUN_ID" ]; then',
        f"  RUN_ID=$({shlex.quote(python)} -c 'import uuid; print(uuid.uuid4().hex)') || exit 2",
        "fi",
    ]
    return lines


# Exit code 1 is a failed attempt (retried); 0 success; anything else (2: the command is wrong,
# 130: stopped) ends the step at once.
_ATTEMPT = [
    "attempt() {  # attempt RETRIES DELAY COMMAND...",
    "  local retries=$1 delay=$2 n=0 code",
    "  shift 2",
    "  while :; do",
    '    "$@"',
    "    code=$?",
    '    if [ "$code" -ne 1 ] || [ "$n" -ge "$retries" ]; then return "$code"; fi',
    "    n=$((n + 1))",
    '    sleep "$delay"',
    "  done",
    "}",
]
