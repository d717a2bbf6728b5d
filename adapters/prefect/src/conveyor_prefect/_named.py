"""Flows named after their pipelines, for the Prefect deployments that workers run.

A deployment's entrypoint is ``conveyor_prefect._named.p_<hex of the pipeline's
name>``: a worker that imports it gets :func:`conveyor_prefect._flow.run_deployment`
under the pipeline's name, so its flow runs, logs and events carry that name.
Pipeline names may hold dots and spaces, which an entrypoint cannot; the hex
spelling keeps any name to one plain attribute.
"""

from __future__ import annotations

from typing import Any

_PREFIX = "p_"


def flow_attribute(pipeline_name: str) -> str:
    """The attribute of this module that is the flow of ``pipeline_name``."""
    return _PREFIX + pipeline_name.encode("utf-8").hex()


def named_flow(pipeline_name: str, **options: Any) -> Any:
    """:func:`run_deployment` as a flow named ``pipeline_name``, importable as ``conveyor_prefect._named.<attr>``.

    Args:
        **options: more ``Flow.with_options`` arguments (``flow_run_name``).
    """
    from conveyor_prefect._flow import run_deployment

    named = run_deployment.with_options(name=pipeline_name, **options)
    # What Prefect makes a module-path entrypoint of (the flow's module and name).
    named.__module__ = __name__
    named.__name__ = named.__qualname__ = flow_attribute(pipeline_name)
    return named


def __getattr__(attribute: str) -> Any:
    if attribute.startswith(_PREFIX):
        try:
            name = bytes.fromhex(attribute[len(_PREFIX) :]).decode("utf-8")
        except ValueError:
            name = None
        if name:
            return named_flow(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
