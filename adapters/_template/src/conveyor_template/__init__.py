"""conveyor on a shell: each pipeline becomes a bash script that runs its steps one after another.

The ``template`` orchestrator flavor compiles a deployment into a script
(:func:`compile_script`, a pure function), writes it (``conveyor pipeline
export``) and runs it (``run``), each step through conveyor's one step
command. ``docs/extending.md`` is the contract it follows.
"""

from conveyor_template._compiler import RUN_ID_ENV, RUN_KEY_PREFIX, CompiledScript, compile_script
from conveyor_template._flavor import TemplateOrchestratorConfig, TemplateOrchestratorFlavor

__all__ = [
    "RUN_ID_ENV",
    "RUN_KEY_PREFIX",
    "CompiledScript",
    "TemplateOrchestratorConfig",
    "TemplateOrchestratorFlavor",
    "compile_script",
]
