"""The model calls of the metadata store interface, the same on every store.

Each test runs against every store implementation this checkout has: the
SQL store on SQLite, and the REST store through a real conveyor server
when ``conveyor.stores.rest`` is installed. Whatever a step or the CLI asks
of a store about models is asked here directly, so a store that answers
differently fails here first.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError, NotFoundError
from conveyor.stores import MetadataStore, ModelLinkRole, RunStatus
from conveyor_testing.strategies import hostile_text, names


def _kinds() -> list[Any]:
    kinds = [pytest.param("sql", id="sql")]
    if importlib.util.find_spec("conveyor.stores.rest") is not None:
        kinds.append(pytest.param("rest", marks=[pytest.mark.server, pytest.mark.integration], id="rest"))
    return kinds


@pytest.fixture(params=_kinds())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    """An empty metadata store of each kind."""
    if request.param == "sql":
        from conveyor.stores.sql import SqlStore

        opened: MetadataStore = SqlStore(f"sqlite:///{tmp_path / 'models.db'}")
    else:
        from conveyor.stores.rest import RestStore  # type: ignore[import-not-found,unused-ignore]

        server = request.getfixturevalue("conveyor_server")
        server.reset()
        opened = RestStore(server.url, token=server.admin_key)
    yield opened
    opened.close()


def _as(store: MetadataStore, name: str, opened: list[MetadataStore]) -> MetadataStore:
    """The store as the user ``name`` sees it: on a server, with a key of an editor of that name.

    A server records the caller it authenticated as the mover of an alias, whatever ``moved_by`` says.
    """
    if store.backend != "rest":
        return store
    from conveyor.stores.rest import RestStore  # type: ignore[import-not-found,unused-ignore]

    assert isinstance(store, RestStore)
    key = store.http.request("POST", "/api/service-accounts", {"name": name, "role": "editor"})["api_key"]
    opened.append(RestStore(store.url, token=key))
    return opened[-1]


def _step_run(store: MetadataStore, step_id: str = "train", *, run: str = "r1", metadata: Any = None) -> Any:
    """A completed step run of a new run that made one artifact ``model``; returns (run, step run, artifact id)."""
    pipeline = store.get_or_create_pipeline("training")
    store.save_deployment("d" * 32, pipeline.id, "{}")
    record = store.create_run(
        name=run,
        pipeline_id=pipeline.id,
        deployment_id="d" * 32,
        status=RunStatus.RUNNING,
        stack_name="default",
        orchestrator="local",
    )
    started = store.start_step_run(
        record.id, step_id, step_name=step_id, source="m:f", code_hash="0" * 64, parameters={}
    )
    artifact = {
        "name": "model",
        "uri": f"/tmp/{run}/{step_id}",
        "data_type": "builtins.dict",
        "materializer": "m:M",
        "content_hash": "1" * 64,
        "metadata": dict(metadata or {}),
        "visualizations": {},
        "manifest": None,
    }
    extra = {"metadata": metadata} if metadata else {}
    outputs = store.complete_step_run(started.id, inputs={}, new_artifacts={"output": artifact}, **extra)
    return record, store.get_step_run(started.id), outputs["output"]


# -- versions ----------------------------------------------------------------------------------
def test_racing_threads_get_each_number_once_and_one_key_one_version(store: MetadataStore) -> None:
    start = threading.Barrier(12)
    got: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            start.wait()
            # Half the threads share a key, as the steps of one run do: they must share one version.
            key = "shared" if i % 2 else f"own-{i}"
            got.append((key, store.get_or_create_model_version("racer", key=key).number))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    shared = {n for key, n in got if key == "shared"}
    own = [n for key, n in got if key != "shared"]
    assert len(shared) == 1 and sorted([*shared, *own]) == list(range(1, 8))
    assert [v.number for v in store.list_model_versions("racer")] == list(range(1, 8))
    assert store.get_model("racer").latest_version == 7


def test_a_version_is_created_with_its_model_then_found_by_key_name_number_latest_and_id(
    store: MetadataStore,
) -> None:
    run, _, _ = _step_run(store)
    fields = {"description": "predicts churn", "tags": ["tabular", "weekly"], "license": "MIT"}
    first = store.get_or_create_model_version("churn", key="run:1", run_id=run.id, model_fields=fields)
    assert (first.number, first.name, first.model_name, first.run_id, first.aliases) == (1, None, "churn", run.id, [])
    assert store.get_or_create_model_version("churn", key="run:1").id == first.id
    named = store.get_or_create_model_version("churn", version="2026-q4", key="run:2")
    assert (named.number, named.name) == (2, "2026-q4")
    assert store.get_or_create_model_version("churn", version="2026-q4", key="run:3").id == named.id
    assert store.get_or_create_model_version("churn", version="1").id == first.id
    assert store.get_or_create_model_version("churn", version="latest").id == named.id

    model = store.get_model("churn")
    assert (model.name, model.description, model.tags, model.license, model.latest_version) == (
        "churn",
        "predicts churn",
        ["tabular", "weekly"],
        "MIT",
        2,
    )
    assert store.get_model(model.id).name == "churn"
    assert [m.name for m in store.list_models()] == ["churn"]
    for reference in ("1", "01", first.id):
        assert store.get_model_version("churn", reference).id == first.id
    for reference in ("2", "latest", "2026-q4", named.id):
        assert store.get_model_version("churn", reference).id == named.id
    assert [(v.number, v.name) for v in store.list_model_versions("churn")] == [(1, None), (2, "2026-q4")]
    with pytest.raises(NotFoundError, match=r"model 'churn' has no version 3 \(its versions are 1 to 2\)"):
        store.get_or_create_model_version("churn", version="3")
    with pytest.raises(NotFoundError, match="no model 'fraud' to take version latest of"):
        store.get_or_create_model_version("fraud", version="latest")
    assert [m.name for m in store.list_models()] == ["churn"]


def test_unknown_and_malformed_names_are_one_line_naming_the_closest(store: MetadataStore) -> None:
    churn = store.get_or_create_model_version("churn", key="a")
    fraud = store.get_or_create_model_version("fraud", key="a")
    store.set_model_alias("churn", "production", churn.id, moved_by="me")
    with pytest.raises(NotFoundError, match=r"no model 'chrun'") as caught:
        store.get_model("chrun")
    assert caught.value.hint == "did you mean 'churn'? models: churn, fraud"
    with pytest.raises(NotFoundError, match=r"model 'churn' has no version or alias 'prodution'") as caught:
        store.get_model_version("churn", "prodution")
    assert caught.value.hint == "did you mean 'production'? aliases: production; number 1"
    with pytest.raises(ConfigError, match="is version 1 of model 'fraud', not a version of 'churn'"):
        store.get_model_version("churn", fraud.id)
    with pytest.raises(ConfigError, match="model name 'bad name!'"):
        store.get_or_create_model_version("bad name!")
    with pytest.raises(ConfigError, match="model version 'a/b'"):
        store.get_model_version("churn", "a/b")
    with pytest.raises(NotFoundError, match="no model 'chrun'"):
        store.list_model_versions("chrun")
    with pytest.raises(NotFoundError, match="no model 'chrun'"):
        store.list_model_alias_events("chrun")


# -- aliases -----------------------------------------------------------------------------------
def test_alias_moves_are_recorded_in_order_and_refused_across_models(store: MetadataStore) -> None:
    one = store.get_or_create_model_version("churn", key="1")
    two = store.get_or_create_model_version("churn", key="2")
    other = store.get_or_create_model_version("fraud", key="1")
    opened: list[MetadataStore] = []
    try:
        alice, bob = _as(store, "alice", opened), _as(store, "bob", opened)
        first = alice.set_model_alias("churn", "production", one.id, moved_by="alice")
        assert first is not None and (first.alias, first.from_version, first.to_version, first.moved_by) == (
            "production",
            None,
            1,
            "alice",
        )
        assert first.created.tzinfo is not None
        assert alice.set_model_alias("churn", "production", one.id, moved_by="alice") is None  # already there
        alice.set_model_alias("churn", "staging", two.id, moved_by="alice")
        # On a server the caller's name counts, not what it claims.
        moved = bob.set_model_alias("churn", "production", two.id, moved_by="alice" if opened else "bob")
        assert moved is not None and (moved.from_version, moved.to_version) == (1, 2)
        removed = bob.set_model_alias("churn", "staging", None, moved_by="alice" if opened else "bob")
        assert removed is not None and (removed.from_version, removed.to_version) == (2, None)
    finally:
        for extra in opened:
            extra.close()

    assert store.get_model_version("churn", "production").id == two.id
    assert store.get_model_version("churn", "2").aliases == ["production"]
    events = store.list_model_alias_events("churn")
    assert [(e.alias, e.from_version, e.to_version, e.moved_by) for e in events] == [
        ("production", None, 1, "alice"),
        ("staging", None, 2, "alice"),
        ("production", 1, 2, "bob"),
        ("staging", 2, None, "bob"),
    ]
    assert [e.to_version for e in store.list_model_alias_events("churn", "production")] == [1, 2]

    with pytest.raises(ConfigError, match="at version 1 of model 'fraud'"):
        store.set_model_alias("churn", "production", other.id, moved_by="eve")
    with pytest.raises(ConfigError, match="reserved: 'latest' always means the newest version"):
        store.set_model_alias("churn", "latest", one.id, moved_by="eve")
    with pytest.raises(NotFoundError, match="model 'churn' has no alias 'stagin'"):
        store.set_model_alias("churn", "stagin", None, moved_by="eve")
    with pytest.raises(NotFoundError, match="no model version"):
        store.set_model_alias("churn", "qa", "f" * 32, moved_by="eve")
    assert len(store.list_model_alias_events("churn")) == 4


# -- links -------------------------------------------------------------------------------------
def test_links_carry_the_step_run_its_artifacts_and_what_it_logged(store: MetadataStore) -> None:
    logged = {"accuracy": 0.93, "params": {"lr": 0.1, "tags": ["a", "b"]}, "note": "line\nbreak"}
    run, step_run, model_id = _step_run(store, metadata=logged)
    assert step_run.metadata == logged  # the step run keeps what the step logged
    assert store.get_artifact(model_id).metadata == logged
    version = store.get_or_create_model_version("churn", key=f"run:{run.id}", run_id=run.id)
    store.link_model_version(
        version.id,
        run_id=run.id,
        step_run_id=step_run.id,
        role=ModelLinkRole.PRODUCED,
        artifacts={"model": model_id},
        metadata=logged,
    )
    # A step retried in the same run links again: its first links make way.
    store.link_model_version(
        version.id,
        run_id=run.id,
        step_run_id=step_run.id,
        role=ModelLinkRole.PRODUCED,
        artifacts={"model": model_id},
        metadata=logged,
    )
    links = store.list_model_version_links(version_id=version.id)
    assert [(link.artifact_id, link.name, link.role, link.metadata) for link in links] == [
        (None, None, "produced", logged),
        (model_id, "model", "produced", {}),
    ]
    assert {(link.model_name, link.version_number, link.run_id, link.step_run_id) for link in links} == {
        ("churn", 1, run.id, step_run.id)
    }
    assert {a: r.id for a, r in store.model_version_artifacts(version.id).items()} == {"model": model_id}

    # A downstream run loads the artifact: a consumed link, which makes it no artifact of the version.
    later, reader, _ = _step_run(store, "predict", run="r2")
    store.link_model_version(
        version.id, run_id=later.id, step_run_id=reader.id, role=ModelLinkRole.CONSUMED, artifacts={"clf": model_id}
    )
    used = store.list_model_version_links(run_id=later.id)
    assert [(link.role, link.name, link.artifact_id) for link in used] == [
        ("consumed", None, None),
        ("consumed", "clf", model_id),
    ]
    assert set(store.model_version_artifacts(version.id)) == {"model"}
    with pytest.raises(ConfigError, match="a model version link's role is 'produced' or 'consumed', not 'owner'"):
        store.link_model_version(version.id, run_id=run.id, step_run_id=step_run.id, role="owner")


def test_the_newest_artifact_of_each_name_is_the_versions(store: MetadataStore) -> None:
    version = store.get_or_create_model_version("churn", version="2026-q4")
    ids = []
    for i in (1, 2):
        run, step_run, model_id = _step_run(store, run=f"r{i}")
        store.link_model_version(
            version.id, run_id=run.id, step_run_id=step_run.id, role="produced", artifacts={"model": model_id}
        )
        ids.append(model_id)
    assert store.model_version_artifacts(version.id)["model"].id == ids[1]
    assert store.get_artifact(ids[1]).version == 2


# -- hostile values ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.one_of(names(), hostile_text(max_size=40)), version=st.one_of(names(), hostile_text(max_size=40)))
def test_hostile_model_and_version_names_are_refused_or_kept_exactly(
    store: MetadataStore, model: str, version: str
) -> None:
    from conveyor.ir import name_problem, version_name_problem

    try:
        made = store.get_or_create_model_version(model, version=version)
    except ConfigError as exc:
        assert name_problem(model) is not None or version_name_problem(version) is not None
        assert "\n" not in exc.message.replace("'\\n'", "")
        return
    except NotFoundError:  # a number or 'latest' of a model with no such version
        assert name_problem(model) is None
        return
    assert made.model_name == model and store.get_model(model).name == model
    assert store.get_model_version(model, version).id == made.id
    assert made in store.list_model_versions(model)
