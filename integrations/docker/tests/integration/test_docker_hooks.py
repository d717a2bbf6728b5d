"""Failure hooks on ``local_docker``, against a recording HTTP server: whoever supervises the step runs them, once.

A step that raises runs its hook inside its container; a container the
kernel killed for going over its memory limit, or one over its ``timeout``,
could not: the orchestrator runs those. An image that does not build fails
the run before it exists: the pipeline's failure hook still runs, once.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import write_module

from conveyor import Client
from conveyor.exceptions import StepFailedError
from conveyor_testing.http_sink import HttpSink

pytestmark = [pytest.mark.integration, pytest.mark.docker]

SUPERVISED = """
import time
from conveyor import ResourceSettings, pipeline, step
from conveyor.alerters import alert_on_failure


@step(on_failure=alert_on_failure, enable_cache=False, resources=ResourceSettings(memory="160Mi"))
def greedy() -> int:
    hoard = bytearray(1024 * 1024 * 1024)  # far past the limit: the kernel kills the container
    return len(hoard)


@step(on_failure=alert_on_failure, enable_cache=False, timeout=3)
def slow() -> int:
    time.sleep(60)
    return 1


@step(on_failure=alert_on_failure, enable_cache=False)
def boom() -> int:
    raise ValueError("boom")


@pipeline(name="supervised", on_failure=alert_on_failure)
def supervised() -> None:
    greedy()
    slow()
    boom()
"""

BUILDS_NOT = """
from conveyor import pipeline, step
from conveyor.alerters import alert_on_failure


@step
def one() -> int:
    return 1


@pipeline(name="unbuilt", on_failure=alert_on_failure, settings={"docker": {"dockerfile": "Dockerfile"}})
def unbuilt() -> None:
    one()
"""


@pytest.fixture
def alerting_stack(docker_stack: str, http_sink: HttpSink) -> str:
    """The docker stack with a webhook alerter that POSTs to the sink."""
    client = Client()
    client.register_component("alerter", "sink", "webhook", {"url": f"{http_sink.url}/hook"})
    client.update_stack(docker_stack, {"alerter": "sink"})
    return docker_stack


def _bodies(sink: HttpSink, count: int) -> list[dict[str, Any]]:
    """The POSTs the sink got: exactly ``count`` (none more after a pause in which a second supervisor would post)."""
    requests = sink.wait_for(count, timeout=30.0)
    time.sleep(0.5)
    assert len(sink.requests) == count, [r.text for r in sink.requests]
    assert all((r.method, r.path) == ("POST", "/hook") for r in requests)
    return [r.json() for r in sink.requests]


def test_killed_and_failed_containers_post_their_failure_hooks_once(
    alerting_stack: str, http_sink: HttpSink, repo: Path
) -> None:
    write_module(repo, "supervised_pipeline", SUPERVISED)
    pipe = importlib.import_module("supervised_pipeline").supervised.with_options(stack=alerting_stack)
    with pytest.raises(StepFailedError):
        pipe()
    run = Client().get_pipeline("supervised").last_run
    bodies = {body["step"]: body for body in _bodies(http_sink, 4)}
    assert set(bodies) == {"greedy", "slow", "boom", None}
    assert all(body["run"] == run.name and body["status"] == "failed" for body in bodies.values())

    # Out of memory: the kernel killed the step's process; the orchestrator says so, once.
    oom = "its container ran out of memory (its memory limit is 160Mi) and was killed"
    assert bodies["greedy"]["error"] == oom
    assert bodies["greedy"]["text"] == f"Step 'greedy' failed in run {run.name!r} of pipeline 'supervised': {oom}"
    assert (run.steps["greedy"].status, run.steps["greedy"].error) == ("failed", oom)
    # Over its timeout: the orchestrator killed the container.
    assert bodies["slow"]["error"] == "timed out after 3 s"
    assert run.steps["slow"].status == "failed"
    # Raised: the step's own process, inside its container, ran the hook.
    assert bodies["boom"]["error"] == "ValueError: boom"
    assert run.status == "failed" and bodies[None]["error"] == run.error
    for step_id in ("greedy", "slow", "boom"):
        received = next(r.received for r in http_sink.requests if r.json()["step"] == step_id)
        assert received - run.steps[step_id].ended.timestamp() <= 2.0

    hooks = sorted((h.step_id or "", h.event, h.status) for h in run.hooks)
    assert hooks == [
        ("", "failure", "completed"),
        ("boom", "failure", "completed"),
        ("greedy", "failure", "completed"),
        ("slow", "failure", "completed"),
    ]


def test_an_image_that_does_not_build_posts_the_pipeline_failure_hook_once(
    alerting_stack: str, http_sink: HttpSink, repo: Path, base_image: str
) -> None:
    from conveyor_docker._client import BuildFailedError

    (repo / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo about-to-break && exit 3\n")
    write_module(repo, "unbuilt_pipeline", BUILDS_NOT)
    pipe = importlib.import_module("unbuilt_pipeline").unbuilt.with_options(stack=alerting_stack)
    started = time.time()
    with pytest.raises(BuildFailedError) as err:
        pipe()
    [body] = _bodies(http_sink, 1)
    assert http_sink.requests[0].received >= started
    first_line = str(err.value).splitlines()[0]
    # No run was created: the context names the pipeline and what failed, no run and no step.
    assert (body["pipeline"], body["run"], body["run_id"], body["step"]) == ("unbuilt", None, None, None)
    assert body["status"] == "failed"
    assert body["error"].startswith("building the Dockerfile") and body["error"] in first_line
    assert body["text"] == f"Pipeline 'unbuilt' failed before its run started: {body['error']}"
    assert Client().list_runs() == []
    [record] = Client().store.list_hook_invocations(None, pipeline_name="unbuilt")
    assert (record.run_id, record.step_id, record.event, record.status) == (None, None, "failure", "completed")
