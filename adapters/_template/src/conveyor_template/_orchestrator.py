"""The ``template`` orchestrator: writes a deployment's bash script, and runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.exceptions import StackError, StepFailedError
from conveyor.orchestrators import BaseOrchestrator, step_process_env, write_file_atomically
from conveyor.runtime import settle_after_engine
from conveyor.stores import RunStatus, url_without_password
from conveyor_template._compiler import RUN_ID_ENV, RUN_KEY_PREFIX, CompiledScript, compile_script

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext
    from conveyor_template._flavor import TemplateOrchestratorConfig


class TemplateOrchestrator(BaseOrchestrator):
    """Compiles deployments into bash scripts (one step after another) and runs them.

    ``run`` writes the script into the output folder, runs it with bash,
    waits, and settles the conveyor run from what its steps recorded.
    ``export`` writes the script anywhere, to run later with ``bash FILE``.
    Only hooks are implemented; ``run``, ``export`` and ``prepare`` are the
    base class's.
    """

    config: TemplateOrchestratorConfig

    def compile(self, deployment: Deployment, ctx: LaunchContext) -> CompiledScript:
        """The script of a stored deployment, with this machine's defaults filled in."""
        return compile_script(
            deployment,
            python=self.config.python or sys.executable,
            store_url=url_without_password(self.config.store_url or ctx.store.url),
            source_root=str(ctx.source_root) if ctx.source_root is not None else None,
        )

    def _export(self, deployment: Deployment, ctx: LaunchContext, output: Path) -> list[Path]:
        compiled = self.compile(deployment, ctx)
        target = output if output.suffix == ".sh" else output / compiled.filename
        return [_write_script(target, compiled)]

    def output_folder(self, ctx: LaunchContext) -> Path:
        """Where ``run`` writes scripts: the config's, or ``template/`` in the repository's ``.conveyor``."""
        if self.config.output_folder:
            return Path(self.config.output_folder).expanduser().resolve()
        return (ctx.home or Path(".conveyor").resolve()) / "template"

    def _connect(self, deployment: Deployment, ctx: LaunchContext) -> None:
        """No bash fails before anything is built or stored.

        Raises:
            StackError: bash is not on PATH.
        """
        if shutil.which("bash") is None:
            raise StackError(
                f"orchestrator {self.name!r} runs pipelines with bash, which is not on PATH", "install bash"
            )

    def _run(self, deployment: Deployment, ctx: LaunchContext) -> str:
        compiled = self.compile(deployment, ctx)
        path = _write_script(self.output_folder(ctx) / compiled.filename, compiled)
        run_id = uuid.uuid4().hex
        # The run exists before the script starts (its steps join it by its key): on a conveyor server its
        # steps then get a token of this run, never this process's own credential.
        run = self.create_run(deployment, ctx, owned=False, run_key=RUN_KEY_PREFIX + run_id, orchestrator_run_id=run_id)
        env = step_process_env(ctx.store, ctx.source_root, {RUN_ID_ENV: run_id}, run_id=run.id)
        print(f"conveyor: running {path}", file=sys.stderr)
        subprocess.run(["bash", str(path)], env=env, check=False)
        if settle_after_engine(ctx.store, deployment, run) == RunStatus.COMPLETED:
            return run.id
        error = ctx.store.get_run(run.id).error or "the script failed"
        raise StepFailedError(f"run {run.name!r} failed: {error}", f"logs: conveyor run describe {run.name}")


def _write_script(path: Path, compiled: CompiledScript) -> Path:
    written = write_file_atomically(
        path, compiled.source.encode("utf-8"), hint="choose a folder this user can write", parents=True
    )
    os.chmod(written, 0o755)
    return written
