"""Model versions on Prefect: a training flow creates versions (a cached step links its artifact), a scoring flow loads one by alias."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PrefectServer, register_prefect_stack

from conveyor import Client

pytestmark = [pytest.mark.integration, pytest.mark.prefect]


@pytest.mark.parametrize("step_mode", ["in_process", "subprocess"])
def test_versions_made_on_prefect_and_an_alias_loaded_downstream(
    step_mode: str, repo: Path, prefect_server: PrefectServer
) -> None:
    from prefect_pipelines import churn_scoring, churn_training

    register_prefect_stack(api_url=prefect_server.url, step_mode=step_mode)
    first = churn_training()
    second = churn_training()
    assert first.orchestrator == second.orchestrator == "prefect"
    assert second.steps["train"].cached and second.status == "completed"
    client = Client()
    versions = client.list_model_versions("churn")
    assert [(v.number, v.run.id) for v in versions] == [(1, first.id), (2, second.id)]
    v1, v2 = versions
    # The cached training step links the artifact it reused, and what it logged, to the new version.
    assert v2.artifacts["model"].id == v1.artifacts["model"].id == first.steps["train"].outputs["model"].id
    assert v1.metadata == v2.metadata == {"accuracy": 0.9, "rows": 4}
    assert sorted(s.step_id for s in first.steps.values()) == ["load", "train"]
    assert [v.number for v in second.model_versions] == [2]

    client.set_model_version_alias("churn", 2, "production")
    scored = churn_scoring()
    assert scored.orchestrator == "prefect" and scored.status == "completed"
    assert scored.steps["predict"].outputs["output"].load() == 18
    assert [(v.model_name, v.number) for v in scored.used_model_versions] == [("churn", 2)]
    assert [r.id for r in client.get_model_version("churn", "production").consumers] == [scored.id]
