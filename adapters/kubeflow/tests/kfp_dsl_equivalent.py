"""settings_demo written by hand with kfp's DSL and kfp-kubernetes, for comparing specs.

No ``from __future__ import annotations`` here: kfp reads the component's
annotations as types.
"""

import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, kubernetes


def settings_demo_in_kfp_dsl(image: str, deployment_id: str, store: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """settings_demo written by hand with kfp's DSL and kfp-kubernetes, compiled by kfp."""

    def make_component() -> Any:
        @dsl.container_component
        def conveyor_step(
            n: int,
            rate: float,
            label: str,
            flags: list,
            options: dict,
            limit: str,
            conveyor_run_id: str,
            conveyor_step: str,
        ) -> dsl.ContainerSpec:
            params = []
            for name, value in (
                ("flags", flags),
                ("label", label),
                ("limit", limit),
                ("n", n),
                ("options", options),
                ("rate", rate),
            ):
                params += ["--param", dsl.ConcatPlaceholder([f"{name}=", value])]
            return dsl.ContainerSpec(
                image=image,
                command=["python", "-m", "conveyor.runtime"],
                args=[
                    "run-step",
                    "--deployment",
                    deployment_id,
                    "--step",
                    conveyor_step,
                    "--run-key",
                    dsl.ConcatPlaceholder(["kfp:", conveyor_run_id]),
                    "--image",
                    image,
                    *params,
                    "--orchestrator-run-id",
                    conveyor_run_id,
                ],
            )

        return conveyor_step

    plain, heavy = make_component(), make_component()

    @dsl.container_component
    def conveyor_finish_run(
        n: int, rate: float, label: str, flags: list, options: dict, limit: str, conveyor_run_id: str
    ) -> dsl.ContainerSpec:
        params = []
        for name, value in (
            ("flags", flags),
            ("label", label),
            ("limit", limit),
            ("n", n),
            ("options", options),
            ("rate", rate),
        ):
            params += ["--param", dsl.ConcatPlaceholder([f"{name}=", value])]
        return dsl.ContainerSpec(
            image=image,
            command=["python", "-m", "conveyor.runtime"],
            args=[
                "finish-run",
                "--deployment",
                deployment_id,
                "--run-key",
                dsl.ConcatPlaceholder(["kfp:", conveyor_run_id]),
                *params,
                "--orchestrator-run-id",
                conveyor_run_id,
            ],
        )

    @dsl.pipeline(name="settings-demo", description="every kind of setting", display_name="Settings_Demo")
    def demo(
        n: int = 3,
        rate: float = 0.5,
        label: str = "hi",
        flags: list = [1, 2],  # noqa: B006
        options: dict = {"a": 1},  # noqa: B006
        limit: str = "null",
    ) -> None:
        shared = {
            "n": n,
            "rate": rate,
            "label": label,
            "flags": flags,
            "options": options,
            "limit": limit,
            "conveyor_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        }

        def task(component: Any, step_id: str) -> Any:
            t = component(**shared, conveyor_step=step_id).set_display_name(step_id).set_caching_options(False)
            t.set_env_variable("CONVEYOR_STORE_URL", store)
            return t

        def train(step_id: str) -> Any:
            t = task(heavy, step_id).after(prepare)
            t.set_env_variable("MODE", "fast")
            t.set_env_variable("TOKEN", "{{api.token}}")
            t.set_retry(2, backoff_duration="5s", backoff_factor=1.0, backoff_max_duration="3600s")
            t.set_cpu_request("500m").set_cpu_limit("2").set_memory_request("1Gi").set_memory_limit("2Gi")
            t.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(2)
            kubernetes.set_timeout(t, 91)
            kubernetes.set_image_pull_policy(t, "IfNotPresent")
            kubernetes.add_node_selector(t, "pool", "gpu")
            kubernetes.add_pod_annotation(t, "note", "heavy")
            kubernetes.add_pod_label(t, "team", "ml")
            kubernetes.mount_pvc(t, pvc_name="data", mount_path="/data")
            kubernetes.use_secret_as_env(t, secret_name="hf", secret_key_to_env={"token": "HF_TOKEN"})
            kubernetes.add_toleration(t, key="gpu", operator="Equal", value="true", effect="NoSchedule")
            kubernetes.add_toleration(t, key="spot", operator="Exists", effect="NoExecute", toleration_seconds=30)
            return t

        finish = conveyor_finish_run(**shared).set_caching_options(False)
        finish.set_display_name("conveyor-finish-run").set_env_variable("CONVEYOR_STORE_URL", store)
        with dsl.ExitHandler(finish):
            prepare = task(plain, "prepare")
            task(plain, "report").after(train("train"))
            task(plain, "report_again").after(train("train_2"))

    with tempfile.TemporaryDirectory() as tmp:
        compiler.Compiler().compile(demo, f"{tmp}/demo.yaml")
        docs = list(yaml.safe_load_all(Path(f"{tmp}/demo.yaml").read_text()))
    return docs[0], docs[1]
