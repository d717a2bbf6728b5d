"""conveyor on Dagster: each pipeline becomes a Dagster job, each step an op.

The ``dagster`` orchestrator flavor writes a definitions file per pipeline
(``conveyor pipeline export`` writes it anywhere, for a Dagster code
location) and runs its job with Dagster's multiprocess executor. Compiling
needs no Dagster; only :func:`execute_definitions` imports it.
"""

from conveyor_dagster._compiler import (
    CompiledDefinitions,
    JobPlan,
    OpPlan,
    compile_definitions,
    plan_job,
    schedule_cron,
)
from conveyor_dagster._execute import Execution, execute_definitions, load_definitions, load_job, prepare_home
from conveyor_dagster._flavor import DagsterOrchestratorConfig, DagsterOrchestratorFlavor, StepMode
from conveyor_dagster._names import dagster_name, is_dagster_name
from conveyor_dagster._settings import PipelineDagsterSettings, StepDagsterSettings

__all__ = [
    "CompiledDefinitions",
    "DagsterOrchestratorConfig",
    "DagsterOrchestratorFlavor",
    "Execution",
    "JobPlan",
    "OpPlan",
    "PipelineDagsterSettings",
    "StepDagsterSettings",
    "StepMode",
    "compile_definitions",
    "dagster_name",
    "execute_definitions",
    "is_dagster_name",
    "load_definitions",
    "load_job",
    "plan_job",
    "prepare_home",
    "schedule_cron",
]
