"""conveyor on Kubeflow Pipelines: each pipeline becomes a KFP v2 spec, each step a container task.

The ``kubeflow`` orchestrator flavor compiles a pipeline into the YAML KFP
loads (``conveyor pipeline export`` writes it anywhere) and, with a KFP host
configured, submits it through ``kfp.Client``: a run, or a recurring run for
a schedule. Compiling needs no kfp; the flavor module never imports it.
"""

from conveyor_kubeflow._compiler import MAX_SPEC_BYTES, CompiledPipeline, compile_pipeline
from conveyor_kubeflow._flavor import KubeflowOrchestratorConfig, KubeflowOrchestratorFlavor
from conveyor_kubeflow._settings import PipelineKubeflowSettings, StepKubeflowSettings, Toleration, VolumeMount

__all__ = [
    "CompiledPipeline",
    "KubeflowOrchestratorConfig",
    "KubeflowOrchestratorFlavor",
    "MAX_SPEC_BYTES",
    "PipelineKubeflowSettings",
    "StepKubeflowSettings",
    "Toleration",
    "VolumeMount",
    "compile_pipeline",
]
