"""Pipelines that exercise the KFP compiler: parameters of every type, settings of every kind."""

from __future__ import annotations

from conveyor import ResourceSettings, pipeline, step


@step
def prepare(n: int, rate: float, label: str, flags: tuple[int, ...], options: dict[str, int], limit: int | None) -> int:
    return n + len(flags) + len(options) + (limit or 0) + int(rate) + len(label)


@step(
    retries=2,
    retry_delay=5,
    timeout=90.5,
    resources=ResourceSettings(cpu=0.5, memory="1Gi", gpu_count=2),
    environment={"MODE": "fast", "TOKEN": "{{api.token}}"},
    settings={
        "kubeflow": {
            "cpu_limit": "2",
            "memory_limit": "2Gi",
            "node_selector": {"pool": "gpu"},
            "tolerations": [
                {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
                {"key": "spot", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 30},
            ],
            "volumes": [{"pvc_name": "data", "mount_path": "/data"}],
            "pod_labels": {"team": "ml"},
            "pod_annotations": {"note": "heavy"},
            "image_pull_policy": "IfNotPresent",
            "secret_env": {"HF_TOKEN": "hf:token"},
        }
    },
)
def train(x: int) -> float:
    return x / 2


@step
def report(value: float) -> str:
    return f"{value:.2f}"


@pipeline(name="Settings_Demo", settings={"kubeflow": {"description": "every kind of setting"}})
def settings_demo(
    n: int = 3,
    rate: float = 0.5,
    label: str = "hi",
    flags: tuple[int, ...] = (1, 2),
    options: dict[str, int] = {"a": 1},  # noqa: B006
    limit: int | None = None,
) -> None:
    x = prepare(n=n, rate=rate, label=label, flags=flags, options=options, limit=limit)
    report(train(x))
    report.with_options(id="report_again")(train(x))


@step
def one(i: int) -> int:
    return i + 1


def chain(length: int, fan: int = 1):
    """A pipeline of ``length`` steps: ``fan`` chains side by side, each step after the one before it."""

    @pipeline(name=f"chain_{length}")
    def long_chain(start: int = 0) -> None:
        tails = [one.with_options(id=f"s{i}")(start) for i in range(fan)]
        for i in range(fan, length):
            tails[i % fan] = one.with_options(id=f"s{i}")(tails[i % fan])

    return long_chain


@step
def first() -> int:
    return 1


@step
def nap(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x


@pipeline(name="napping")
def napping(seconds: float = 120.0) -> None:
    one(nap(first(), seconds))
