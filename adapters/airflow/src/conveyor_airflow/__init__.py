"""conveyor on Apache Airflow: each pipeline becomes a DAG file, each step a task.

The ``airflow`` orchestrator flavor writes the DAG of a pipeline into
Airflow's dags folder (``conveyor pipeline export`` writes it anywhere) and,
with an Airflow API configured, triggers it and follows the run. Compiling
needs no Airflow installed; this package never imports it.
"""

from conveyor_airflow._compiler import CompiledDag, DagPlan, TaskPlan, compile_dag, plan_dag
from conveyor_airflow._flavor import AirflowOrchestratorConfig, AirflowOrchestratorFlavor, OperatorMode
from conveyor_airflow._names import airflow_key, dag_id_for, task_id_for
from conveyor_airflow._settings import PipelineAirflowSettings, StepAirflowSettings

__all__ = [
    "AirflowOrchestratorConfig",
    "AirflowOrchestratorFlavor",
    "CompiledDag",
    "DagPlan",
    "OperatorMode",
    "PipelineAirflowSettings",
    "StepAirflowSettings",
    "TaskPlan",
    "airflow_key",
    "compile_dag",
    "dag_id_for",
    "plan_dag",
    "task_id_for",
]
