"""Hypothesis pipelines whose names, parameters, settings, environment and paths are hostile."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

from conveyor.ir import ComponentIR, Deployment, PipelineIR, PipelineSettings, StackIR, StepIR, StepSettings
from conveyor_dagster import dagster_name
from conveyor_testing.strategies import hostile_text, names

text = hostile_text()
no_nul = text.map(lambda t: t.replace("\x00", ""))
tag_key = st.from_regex(r"\A([a-z0-9_.-]{1,10}/)?[A-Za-z0-9_.-]{1,10}\Z")


@st.composite
def pipelines(draw: Any) -> tuple[Deployment, dict[str, Any]]:
    """A deployment of valid but hostile names and hostile values, and an orchestrator config for it."""
    step_ids = draw(st.lists(names(), min_size=1, max_size=4, unique_by=dagster_name))
    mode = draw(st.sampled_from(["python", "docker"]))
    steps = []
    for i, sid in enumerate(step_ids):
        dagster = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "description": text,
                    "tags": st.dictionaries(tag_key, no_nul, max_size=2),
                    "pool": no_nul.filter(lambda t: re.match(r"^\S+$", t) is not None),
                },
            )
        )
        steps.append(
            StepIR(
                id=sid,
                name=draw(names()),
                source=f"m:{draw(text)}",
                code_hash="0",
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    retries=draw(st.integers(0, 3)),
                    environment=draw(st.dictionaries(st.text("ABCXYZ_", min_size=1, max_size=5), no_nul, max_size=2)),
                    extra={"dagster": dagster, "other": {draw(text): draw(text)}},
                ),
            )
        )
    pipeline = PipelineIR(
        name=draw(names()),
        source=draw(text),
        parameters=draw(st.dictionaries(names(), st.one_of(text, st.lists(text, max_size=2)), max_size=3)),
        steps=tuple(steps),
        settings=PipelineSettings(
            extra={"dagster": {"description": draw(text), "tags": draw(st.dictionaries(tag_key, no_nul, max_size=2))}}
        ),
    )
    stack = StackIR(
        name=draw(names()),
        components={
            "orchestrator": ComponentIR(type="orchestrator", flavor="dagster", name=draw(names())),
            "artifact_store": ComponentIR(
                type="artifact_store", flavor="local", name=draw(names()), config={"path": draw(text)}
            ),
        },
    )
    images = {"": draw(no_nul.filter(bool))} if mode == "docker" else {}
    config = {
        "mode": mode,
        "python": draw(no_nul.filter(bool)),
        "store_url": "sqlite:///" + draw(no_nul),
        "source_root": draw(no_nul.filter(bool)),
        "container_python": draw(no_nul.filter(bool)),
        "docker_url": draw(text),
        "tags": draw(st.dictionaries(tag_key, no_nul, max_size=2)),
        "docker_mounts": [f"/{draw(st.text('ab/', min_size=1))}:/{draw(st.text('cd', min_size=1))}"],
    }
    return Deployment(pipeline=pipeline, stack=stack, images=images), config


def job_name(dep: Deployment) -> str:
    """The job name a deployment compiles to (its pipeline's, unless one of its ops has it)."""
    name = dagster_name(dep.pipeline.name)
    return f"{name}_job" if name in {dagster_name(s.id) for s in dep.pipeline.steps} else name
