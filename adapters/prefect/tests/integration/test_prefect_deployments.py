"""Scheduled pipelines become Prefect deployments that a real process worker runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect_test_support import PrefectServer, prefect_command, prefect_env, register_prefect_stack, spawn, stop, tail

from conveyor import Client, Schedule, deploy_pipeline
from conveyor_testing.conformance import artifact_hashes, case, check_run, load_pipeline, run_case

pytestmark = [pytest.mark.integration, pytest.mark.prefect]

WORKER_TIMEOUT = 180.0


def test_deployment_runs_on_a_process_worker(repo: Path, prefect_server: PrefectServer, tmp_path_factory) -> None:
    from prefect.client.orchestration import get_client

    from conveyor_prefect._orchestrator import prefect_api

    c = case("quickstart")
    local = run_case(c, stack="default")
    stack = register_prefect_stack(api_url=prefect_server.url, work_pool="conveyor-test", activate=False)
    pipe = load_pipeline(c).with_options(enable_cache=False)
    deployed = deploy_pipeline(pipe, stack=stack, parameters=c.params, schedule=Schedule(cron="0 0 1 1 *"))
    assert deployed.status == "deployed"
    assert deployed.trigger == "prefect deployment run 'quickstart/quickstart'"

    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("quickstart/quickstart")
        assert deployment.work_pool_name == "conveyor-test"
        assert [s.schedule.cron for s in deployment.schedules] == ["0 0 1 1 *"]
        # A worker imports the flow under the pipeline's name (any name: spelled in hex).
        assert deployment.entrypoint == f"conveyor_prefect._named.p_{b'quickstart'.hex()}"
        assert "conveyor-pipeline:quickstart" in deployment.tags
        flow_run = client.create_flow_run_from_deployment(deployment.id)

    work = tmp_path_factory.mktemp("worker")
    worker = spawn(
        [*prefect_command(), "worker", "start", "--pool", "conveyor-test", "--run-once"],
        work / "worker.log",
        prefect_env(prefect_server.home, PREFECT_API_URL=prefect_server.url),
        cwd=work,
    )
    try:
        worker.wait(WORKER_TIMEOUT)
    finally:
        stop(worker)
    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.is_completed(), f"flow run ended {state.name}:\n{tail(work / 'worker.log')}"
    log = (work / "worker.log").read_text()
    assert "for flow 'quickstart'" in log and "conveyor-pipeline'" not in log, tail(work / "worker.log")

    runs = [r for r in Client().list_runs("quickstart") if r.orchestrator_run_id == str(flow_run.id)]
    assert len(runs) == 1, tail(work / "worker.log")
    run = runs[0]
    assert run.record.run_key == f"prefect:{flow_run.id}"
    check_run(c, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        assert f"conveyor-run:{run.id}" in client.read_flow_run(flow_run.id).tags


def test_redeploying_updates_the_same_prefect_deployment(repo: Path, prefect_server: PrefectServer) -> None:
    from prefect.client.orchestration import get_client

    from conveyor_prefect._orchestrator import prefect_api

    stack = register_prefect_stack(
        api_url=prefect_server.url, work_pool="conveyor-redeploy", deployment_name="nightly", activate=False
    )
    pipe = load_pipeline(case("fan_out")).with_options(enable_cache=False)
    deploy_pipeline(pipe, stack=stack, parameters={"width": 4}, schedule=Schedule(cron="0 3 * * *"))
    deploy_pipeline(pipe, stack=stack, parameters={"width": 4}, schedule=Schedule(interval_seconds=3600))
    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("fan_out/nightly")
        assert [s.schedule.interval.total_seconds() for s in deployment.schedules] == [3600.0]
        assert client.read_work_pool("conveyor-redeploy").type == "process"
    assert Client().list_runs() == []  # deploying runs nothing by itself
