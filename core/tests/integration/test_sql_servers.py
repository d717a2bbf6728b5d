"""The metadata store on real MariaDB and PostgreSQL servers, started by the test setup."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor import Client
from conveyor.exceptions import SchemaVersionError
from conveyor.stores.sql import SCHEMA_REVISIONS, SqlStore
from conveyor_testing.conformance import CASES, artifact_hashes, check_run, run_case

pytestmark = pytest.mark.integration


def _use_store(url: str, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_STORE_URL", url)


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_conformance_pipelines_on_a_server_database(
    server: str, request: pytest.FixtureRequest, repo: Path, examples_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = request.getfixturevalue(f"fresh_{server}_url")
    local = {c.name: artifact_hashes(run_case(c)) for c in CASES}
    from conveyor import _repository

    _repository._stores.clear()
    _use_store(url, repo, monkeypatch)
    for case in CASES:
        run = run_case(case)
        check_run(case, run)
        assert artifact_hashes(run) == local[case.name]
    store = SqlStore(url)
    assert store.schema_revision() == SCHEMA_REVISIONS[-1]
    store.close()
    assert len(Client().list_runs()) == len(CASES)


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_newer_schema_is_refused_on_a_server(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"fresh_{server}_url")
    SqlStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="newer than this conveyor"):
        SqlStore(url)


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_live_drivers_run_is_not_taken_for_a_dead_one(server: str, request: pytest.FixtureRequest) -> None:
    # The driver's start time is read back exactly enough to tell it is the same process.
    from conveyor.stores import RunStatus, current_process_identity

    url = request.getfixturevalue(f"fresh_{server}_url")
    store = SqlStore(url)
    pipeline = store.get_or_create_pipeline("p")
    store.save_deployment("d" * 32, pipeline.id, "{}")
    host, pid, started = current_process_identity()
    run = store.create_run(
        name="live",
        pipeline_id=pipeline.id,
        deployment_id="d" * 32,
        status=RunStatus.RUNNING,
        stack_name="default",
        orchestrator="local",
        host=host,
        pid=pid,
        pid_started=started,
    )
    assert store.fail_dead_runs() == []
    assert store.get_run(run.id).status == RunStatus.RUNNING
    store.close()


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_finding_and_cleaning_up_on_a_server(server: str, request: pytest.FixtureRequest) -> None:
    from conveyor_testing.store_contract import check_finding_and_cleanup

    store = SqlStore(request.getfixturevalue(f"fresh_{server}_url"))
    check_finding_and_cleanup(store)
    store.close()


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_recording_steps_on_a_server(server: str, request: pytest.FixtureRequest) -> None:
    from conveyor_testing.store_contract import check_recording_steps

    store = SqlStore(request.getfixturevalue(f"fresh_{server}_url"))
    check_recording_steps(store)
    store.close()
