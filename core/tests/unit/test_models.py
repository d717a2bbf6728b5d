"""Models: numbered versions, aliases with their history, links to runs, steps and artifacts, log_metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.client import close_stores
from conveyor.exceptions import ConfigError, ConveyorError, DefinitionError, NotFoundError, StepFailedError
from conveyor.runtime import MAX_METADATA_BYTES
from conveyor_testing.strategies import hostile_text, names
from tests_support import BEFORE_MODELS, MODEL_PIPELINES, as_json, fails, ok, race_for_versions, write_module


@pytest.fixture
def models(repo: Path) -> Any:
    write_module(repo, "model_pipes", MODEL_PIPELINES)
    import model_pipes

    return model_pipes


def _versions(model: str) -> list[int]:
    return [v.number for v in Client().list_model_versions(model)]


# -- versions, links, metadata ---------------------------------------------------------------
def test_each_run_creates_a_version_linking_its_steps_artifacts_and_metadata(models: Any) -> None:
    first = models.training(lr=0.25)
    second = models.training(lr=0.25)  # every step comes from the cache
    assert second.steps["train"].cached and second.steps["load"].cached
    assert _versions("churn") == [1, 2]

    client = Client()
    model = client.get_model("churn")
    assert (model.description, model.tags, model.license) == ("predicts churn", ["tabular"], "MIT")
    v1, v2 = client.get_model_version("churn", 1), client.get_model_version("churn", "latest")
    assert v2.number == 2 and v1.run.id == first.id and v2.run.id == second.id
    # The cached training step links the artifact it reused to the new version.
    assert v2.artifacts["model"].id == v1.artifacts["model"].id == first.steps["train"].outputs["model"].id
    assert set(v2.artifacts) == {"numbers", "model"}
    assert v2.artifacts["model"].load()["made_in"] == 1
    # What the step logged: on the step run, its artifact, and both versions (the cached step's too).
    logged = {"accuracy": 0.75, "params": {"lr": 0.25}, "rows": 5}
    assert first.steps["train"].metadata == logged and second.steps["train"].metadata == logged
    assert v1.metadata == logged and v2.metadata == logged
    assert {k: v1.artifacts["model"].metadata[k] for k in logged} == logged
    assert first.steps["load"].metadata == {}
    assert [v.number for v in second.model_versions] == [2] and second.used_model_versions == []


def test_metadata_shows_in_run_artifact_and_model_version_describe(models: Any) -> None:
    run = models.training(lr=0.5)
    described = as_json("run", "describe", run.name)
    train = next(s for s in described["steps"] if s["step"] == "train")
    assert train["metadata"] == {"accuracy": 1.0, "params": {"lr": 0.5}, "rows": 5}
    assert described["models"] == [
        {
            "role": "produced",
            "model": "churn",
            "version": 1,
            "version_id": run.model_versions[0].id,
            "steps": ["load", "train"],
        }
    ]
    assert 'train: accuracy=1.0, params={"lr": 0.5}, rows=5' in ok("run", "describe", run.name)
    artifact = as_json("artifact", "describe", train["outputs"]["model"]["id"])
    assert artifact["metadata"]["accuracy"] == 1.0
    version = as_json("model", "version", "describe", "churn", "1")
    assert version["metadata"] == train["metadata"]
    assert version["run"] == run.name
    assert {s["step"]: sorted(s["artifacts"]) for s in version["steps"]} == {"load": ["numbers"], "train": ["model"]}
    assert version["artifacts"]["model"]["id"] == train["outputs"]["model"]["id"]


def test_a_named_version_is_created_once_and_shared_by_the_runs_that_name_it(models: Any) -> None:
    from conveyor.dsl import Model

    named = models.training.with_options(model=Model(name="churn", version="2026-q4"))
    one, two = named(n=3), named(n=4)
    versions = Client().list_model_versions("churn")
    assert [(v.number, v.name) for v in versions] == [(1, "2026-q4")]
    version = Client().get_model_version("churn", "2026-q4")
    assert [r.id for r in version.runs] == [one.id, two.id]
    assert version.artifacts["numbers"].load() == [0, 1, 2, 3]  # the newest of each name


def test_a_step_with_its_own_model_creates_a_version_per_step_run(repo: Path) -> None:
    write_module(
        repo,
        "own_models",
        """
from conveyor import Model, get_step_context, pipeline, step

@step(model=Model(name="scorer"))
def score(i: int) -> int:
    return get_step_context().model_version.number

@step
def plain(i: int) -> str:
    version = get_step_context().model_version
    return f"{version.model_name} {version.number}"

@pipeline(model=Model(name="main"))
def mixed() -> None:
    score(1)
    score(2)
    # A long step id still makes a key that fits the store (its artifact's name, id and output, fits too).
    score.with_options(id="s" * 240)(3)
    plain(3)
    plain.with_options(model=Model(name="main"))(4)
""",
    )
    import own_models

    run = own_models.mixed()
    own = [run.steps[sid].outputs["output"].load() for sid in ("score", "score_2", "s" * 240)]
    assert sorted(own) == [1, 2, 3]
    assert run.steps["plain"].outputs["output"].load() == run.steps["plain_2"].outputs["output"].load() == "main 1"
    assert sorted((v.model_name, v.number) for v in run.model_versions) == [
        ("main", 1),
        ("scorer", 1),
        ("scorer", 2),
        ("scorer", 3),
    ]


def test_a_run_config_names_the_model_of_the_pipeline_and_of_a_step(models: Any, repo: Path) -> None:
    (repo / "run.yaml").write_text(
        "model: {name: churn, version: '2026-q4', tags: [yaml]}\nsteps:\n  load:\n    model: {name: data}\n"
    )
    run = models.training.with_options(config_path=repo / "run.yaml")()
    assert sorted((v.model_name, v.number, v.name) for v in run.model_versions) == [
        ("churn", 1, "2026-q4"),
        ("data", 1, None),
    ]
    assert Client().get_model("churn").tags == ["yaml"]
    (repo / "bad.yaml").write_text("model: {name: churn, stage: production}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.stage'"):
        models.training.with_options(config_path=repo / "bad.yaml")()


def test_concurrent_runs_and_parallel_steps_number_versions_once_each(repo: Path) -> None:
    many, *others = race_for_versions(repo)
    assert len(others) == 2
    versions = Client().list_model_versions("racer")
    assert [v.number for v in versions] == list(range(1, 11))
    # Each step of the 8 worked in a version of its own; each other run in one.
    seen = sorted(s.outputs["output"].load() for s in many.steps.values())
    seen += [r.steps["run_version"].outputs["output"].load() for r in others]
    assert sorted(seen) == list(range(1, 11))
    assert sorted(v.run.id for v in versions) == sorted([many.id] * 8 + [r.id for r in others])


# -- aliases ---------------------------------------------------------------------------------
def _movers(monkeypatch: pytest.MonkeyPatch, *names: str) -> Any:
    """``become(name)``: the next commands run as ``name`` (the login name; on a server, an editor's key)."""
    store = Client().store
    keys = {}
    if store.backend == "rest":
        for name in names:
            keys[name] = store.http.request("POST", "/api/service-accounts", {"name": name, "role": "editor"})[
                "api_key"
            ]  # type: ignore[attr-defined]

    def become(name: str) -> None:
        monkeypatch.setenv("USER", name)
        monkeypatch.setenv("LOGNAME", name)
        if keys:
            close_stores()
            monkeypatch.setenv("CONVEYOR_API_KEY", keys[name])

    return become


def test_aliases_move_with_their_history_and_latest_is_the_newest(models: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for lr in (0.1, 0.2, 0.3):
        models.training(lr=lr)
    become = _movers(monkeypatch, "alice", "bob")
    become("alice")
    assert "now points at version 1." in ok("model", "version", "alias", "set", "churn", "1", "production")
    assert "now points at version 2" in ok("model", "version", "alias", "set", "churn", "2", "staging")
    become("bob")
    out = ok("model", "version", "alias", "set", "churn", "staging", "production")
    assert "now points at version 2 (was version 1)" in out
    assert "already" in ok("model", "version", "alias", "set", "churn", "2", "production")
    ok("model", "version", "alias", "remove", "churn", "staging")

    client = Client()
    assert client.get_model_version("churn", "production").number == 2
    assert client.get_model_version("churn", "latest").number == 3
    assert client.get_model("churn").aliases == {"production": 2}
    history = as_json("model", "version", "history", "churn")
    assert [(e["alias"], e["from"], e["to"], e["by"]) for e in history] == [
        ("production", None, 1, "alice"),
        ("staging", None, 2, "alice"),
        ("production", 1, 2, "bob"),
        ("staging", 2, None, "bob"),
    ]
    assert all(e["time"] for e in history)
    assert [e["to"] for e in as_json("model", "version", "history", "churn", "--alias", "production")] == [1, 2]
    text = ok("model", "version", "history", "churn")
    assert "(removed)" in text and "bob" in text
    listed = as_json("model", "list")
    assert (
        listed[0]["name"] == "churn" and listed[0]["latest_version"] == 3 and listed[0]["aliases"] == {"production": 2}
    )
    described = as_json("model", "describe", "churn")
    assert [v["aliases"] for v in described["versions"]] == [[], ["production"], []]
    assert [v["number"] for v in as_json("model", "version", "list", "churn")] == [1, 2, 3]


def test_an_alias_on_a_version_of_another_model_is_refused(models: Any, repo: Path) -> None:
    from conveyor.dsl import Model

    models.training()
    other = models.training.with_options(model=Model(name="fraud"))()
    fraud = other.model_versions[0]
    error = fails("model", "version", "alias", "set", "churn", fraud.id, "production")
    assert "is version 1 of model 'fraud', not a version of 'churn'" in error
    with pytest.raises(ConfigError, match="at version 1 of model 'fraud'"):
        Client().store.set_model_alias("churn", "production", fraud.id, moved_by="me")
    assert Client().model_alias_history("churn") == []


@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("latest", "reserved: 'latest' always means the newest version"),
        ("42", "is all digits"),
        ("prod/../x", "contains '/'"),
        ("", "is empty"),
    ],
)
def test_a_malformed_alias_is_refused(models: Any, alias: str, problem: str) -> None:
    models.training()
    assert problem in fails("model", "version", "alias", "set", "churn", "1", alias)
    assert Client().model_alias_history("churn") == []


def test_an_alias_cannot_be_another_versions_name(models: Any) -> None:
    from conveyor.dsl import Model

    models.training.with_options(model=Model(name="churn", version="2026-q4"))()
    models.training(n=7)
    assert "is the name of version 1" in fails("model", "version", "alias", "set", "churn", "2", "2026-q4")


# -- unknown names: one line with the closest ------------------------------------------------
def test_unknown_model_version_or_alias_names_the_closest(models: Any) -> None:
    models.training()
    Client().set_model_version_alias("churn", 1, "production")
    assert fails("model", "describe", "chrun") == (
        "conveyor: error: no model 'chrun' (did you mean 'churn'? models: churn)"
    )
    assert fails("model", "version", "describe", "churn", "prodution") == (
        "conveyor: error: model 'churn' has no version or alias 'prodution' "
        "(did you mean 'production'? aliases: production; number 1)"
    )
    assert "has no version 7 (its only version is 1)" in fails("model", "version", "describe", "churn", "7")
    assert "has no alias 'stagin'" in fails("model", "version", "alias", "remove", "churn", "stagin")
    with pytest.raises(NotFoundError, match=r"did you mean 'churn'"):
        Client().get_model_version("churn_", "latest")


def test_a_pipeline_that_loads_an_unknown_version_fails_before_anything_runs(models: Any) -> None:
    models.training()
    before = len(Client().list_runs())
    with pytest.raises(NotFoundError, match=r"model 'churn' has no version or alias 'production' \(number 1\)"):
        models.scoring()
    with pytest.raises(NotFoundError, match=r"no model 'chrun' \(did you mean 'churn'"):
        models.scoring(model="chrun@production")
    with pytest.raises(NotFoundError, match="has no artifact 'modle' \\(did you mean 'model'"):
        models.scoring(model="churn@1/modle")
    assert len(Client().list_runs()) == before


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda Model: Model(name="churn/../../x"), "model name 'churn/../../x' contains '/'"),
        (lambda Model: Model(name=""), "model name '' is empty"),
        (lambda Model: Model(name="churn", version="0"), "versions are numbered from 1"),
        (lambda Model: Model(name="churn", version="a b\n"), "contains '\\n'"),
        (lambda Model: Model(name="churn", tags="tabular"), "tags must be a list"),
    ],
)
def test_a_malformed_model_is_refused_when_the_pipeline_is_written(make: Any, problem: str) -> None:
    from conveyor import Model

    with pytest.raises(DefinitionError) as info:
        make(Model)
    assert problem in str(info.value) and "\n" not in str(info.value).replace("'\\n'", "")


def test_a_malformed_reference_is_refused_before_anything_runs(models: Any) -> None:
    with pytest.raises(DefinitionError, match=r"'churn@', which is not a model reference: model version '' is empty"):
        models.scoring(model="churn@")
    with pytest.raises(DefinitionError, match=r"model name 'a/b' contains '/'"):
        models.scoring(model="a/b@production")
    assert Client().list_runs() == []


# -- loading a version downstream ------------------------------------------------------------
def test_a_downstream_pipeline_loads_the_version_an_alias_names_and_records_it(models: Any) -> None:
    models.training(n=3)  # weights 3
    models.training(n=4)  # weights 6
    client = Client()
    client.set_model_version_alias("churn", 1, "production")
    first = models.scoring()
    assert first.steps["predict"].outputs["output"].load() == 6
    assert [(v.model_name, v.number) for v in first.used_model_versions] == [("churn", 1)]
    assert first.model_versions == []
    # The alias is read when the step runs: moving it changes what the next run loads.
    client.set_model_version_alias("churn", 2, "production")
    second = models.scoring()
    assert second.steps["predict"].outputs["output"].load() == 12
    assert [v.number for v in second.used_model_versions] == [2]
    assert [r.id for r in client.get_model_version("churn", 2).consumers] == [second.id]
    assert second.steps["predict"].inputs["model"].id == client.get_model_version("churn", 2).artifacts["model"].id
    pinned = models.scoring(model="churn@1")
    assert pinned.steps["predict"].outputs["output"].load() == 6
    described = as_json("run", "describe", second.name)
    assert [(m["role"], m["model"], m["version"], m["steps"]) for m in described["models"]] == [
        ("consumed", "churn", 2, ["predict"])
    ]
    used_by = as_json("model", "version", "describe", "churn", "2")["used_by"]
    assert [(u["run"], u["step"], list(u["artifacts"])) for u in used_by] == [(second.name, "predict", ["model"])]


def test_the_artifact_is_chosen_by_input_name_then_type_or_named(models: Any) -> None:
    models.training(lr=0.3)
    Client().set_model_version_alias("churn", 1, "production")
    assert models.by_type().steps["learning_rate"].outputs["output"].load() == 0.3  # the only dict
    assert models.by_name().steps["rows"].outputs["output"].load() == 5  # named with .artifact()
    with pytest.raises(ConfigError, match=r"input 'data' loads version 1 of model 'churn', which has 2 artifacts"):
        models.ambiguous()
    assert [r.pipeline_name for r in Client().list_runs()] == ["by_name", "by_type", "training"]


def test_a_parameter_overridden_at_run_time_must_be_a_reference(models: Any) -> None:
    from conveyor.ir import ModelInput
    from conveyor.runtime import resolve_model_input

    models.training()
    store = Client().store
    step = models.scoring.trace().steps[0]
    inp = step.inputs["model"]
    assert isinstance(inp, ModelInput) and inp.pipeline_parameter == "model"
    version, artifact = resolve_model_input(store, step, "model", inp, dict, {"model": "churn@latest"})
    # The version knows it as "model"; it is versioned under its pipeline and step.
    assert version.number == 1 and artifact.name == "training::train::model"
    with pytest.raises(ConfigError, match="pipeline parameter 'model' is 'nonsense', which is not a model reference"):
        resolve_model_input(store, step, "model", inp, dict, {"model": "nonsense"})


# -- log_metadata ----------------------------------------------------------------------------
BAD_METADATA = """
import math
from conveyor import log_metadata, pipeline, step

@step
def bad(kind: str) -> int:
    values = {"nan": {"loss": math.nan}, "object": {"model": object()}, "key": {"": 1}, "big": {"x": "y" * 70000},
              "nul": {"note": {"a\\x00b": 1}}}
    log_metadata(values[kind])
    return 1

@pipeline(enable_cache=False)
def logs_badly(kind: str) -> None:
    bad(kind)
"""


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("nan", "metadata 'loss' is nan, which JSON cannot hold"),
        ("object", "metadata 'model' is of type object; metadata are numbers, strings"),
        ("key", "metadata key '' is not a name"),
        ("big", "the metadata logged come to 70008 bytes; at most 65536 fit"),
        ("nul", "metadata 'note' key holds a NUL character, which no metadata store keeps"),
    ],
)
def test_metadata_that_is_not_small_plain_data_fails_the_step_in_one_line(repo: Path, kind: str, problem: str) -> None:
    write_module(repo, "bad_metadata", BAD_METADATA)
    import bad_metadata

    with pytest.raises(StepFailedError, match="step 'bad' failed: " + problem.replace("(", r"\(")):
        bad_metadata.logs_badly(kind)


def test_log_metadata_outside_a_step_is_one_line() -> None:
    from conveyor import log_metadata

    with pytest.raises(ConveyorError, match=r"log_metadata\(\) works only inside a running step"):
        log_metadata({"a": 1})


def test_numpy_like_scalars_and_secret_values_are_logged_as_plain_masked_data(repo: Path) -> None:
    from conveyor.runtime import StepContext
    from conveyor.secrets import mask_values

    class Scalar:  # what numpy's scalars look like to log_metadata
        shape = ()

        def item(self) -> float:
            return 0.5

    mask_values(["s3cr3t-value"])
    ctx = StepContext(pipeline_name="p", run_id="r", run_name="r", step_id="s", step_name="s", attempt=1)
    ctx.log_metadata({"score": Scalar(), "note": "token s3cr3t-value used", "flags": (True, None, 3)})
    assert ctx.logged_metadata == {"score": 0.5, "note": "token *** used", "flags": [True, None, 3]}


def test_a_step_that_logs_nothing_costs_no_store_call_and_no_model_costs_none(
    models: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections import Counter

    from conveyor.stores import MetadataStore

    write_module(
        repo,
        "quiet",
        """
from conveyor import log_metadata, pipeline, step

@step
def silent(x: int) -> int:
    return x

@step
def talkative(x: int) -> int:
    log_metadata({"x": x})
    return x

@pipeline(enable_cache=False)
def quiet(talk: bool = False) -> None:
    (talkative if talk else silent)(1)
""",
    )
    import quiet

    quiet.quiet(talk=False)  # the store, the stack and both deployments exist before counting
    quiet.quiet(talk=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pipeline without a model asked the store about models")

    # Every call of the store interface is counted: on a server each is a request.
    store_class = type(Client().store)
    refused = {"get_or_create_model_version", "link_model_version", "model_version_artifacts", "get_model_version"}
    for name in refused:
        monkeypatch.setattr(store_class, name, refuse)
    calls: Counter[str] = Counter()

    def counting(name: str, real: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(self, *args, **kwargs)

        return call

    for name in MetadataStore.__abstractmethods__ - refused:
        monkeypatch.setattr(store_class, name, counting(name, getattr(store_class, name)))
    quiet.quiet(talk=False)
    silent = Counter(calls)
    calls.clear()
    run = quiet.quiet(talk=True)
    assert calls == silent and calls["complete_step_run"] == 1  # the logged values ride on the step's completion
    assert run.steps["talkative"].metadata == {"x": 1}


# -- the migration ---------------------------------------------------------------------------
@pytest.mark.sql_store("downgrades and upgrades the repository's SQLite file")
def test_a_store_at_the_previous_head_with_runs_is_upgraded(models: Any) -> None:
    import sqlalchemy as sa
    from alembic import command

    from conveyor.client import close_stores
    from conveyor.stores.sql import SCHEMA_REVISIONS, SqlStore
    from conveyor.stores.sql._migrate import alembic_config

    before = models.training_without_model(lr=0.4)
    url = Client().store.url
    close_stores()
    engine = sa.create_engine(url)
    with engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), BEFORE_MODELS)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == BEFORE_MODELS
        assert "models" not in sa.inspect(conn).get_table_names()
    engine.dispose()

    store = SqlStore(url)
    assert store.schema_revision() == SCHEMA_REVISIONS[-1]
    store.close()
    client = Client()
    kept = client.get_run(before.name)
    assert kept.status == "completed" and kept.steps["train"].outputs["model"].load()["lr"] == 0.4
    assert kept.steps["train"].metadata == {} and kept.model_versions == []
    # The runs from before the upgrade serve the cache, and their artifacts join a new version.
    after = models.training(lr=0.4)
    assert after.steps["train"].cached
    version = client.get_model_version("churn", "latest")
    assert version.number == 1 and version.artifacts["model"].id == kept.steps["train"].outputs["model"].id
    assert version.metadata == {}  # logged before the store kept what steps log


# -- hostile values --------------------------------------------------------------------------
@given(st.text(max_size=80))
def test_any_reference_text_parses_into_checked_parts_or_one_clear_problem(text: str) -> None:
    from conveyor.ir import name_problem, parse_model_reference, version_reference_problem

    try:
        parsed = parse_model_reference(text)
    except ValueError as exc:
        assert "\n" not in str(exc).replace("'\\n'", "") and str(exc)
        return
    if parsed is None:
        assert "@" not in text
        return
    model, version, artifact = parsed
    assert name_problem(model) is None and version_reference_problem(version) is None
    assert artifact is None or (artifact.isprintable() and artifact)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(alias=st.one_of(names(), hostile_text(max_size=40)), version=st.one_of(names(), hostile_text(max_size=40)))
def test_hostile_aliases_and_versions_are_refused_or_stored_exactly(repo: Path, alias: str, version: str) -> None:
    from conveyor.ir import version_name_problem, version_reference_problem

    store = Client().store
    target = store.get_or_create_model_version("hostile", key="fixed")
    try:
        event = store.set_model_alias("hostile", alias, target.id, moved_by="tester")
    except ConfigError as exc:
        assert version_name_problem(alias) is not None or "is the name of version" in exc.message
        assert "\n" not in str(exc).replace("'\\n'", "").replace("'\\r'", "")
    else:
        assert version_name_problem(alias) is None
        assert event is None or event.alias == alias
        assert store.get_model_version("hostile", alias).id == target.id
    try:
        found = store.get_model_version("hostile", version)
    except ConfigError:
        assert version_reference_problem(version) is not None
    except NotFoundError as exc:
        assert version_reference_problem(version) is None and "hostile" in exc.message
    else:
        assert found.id == target.id


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.one_of(names(), hostile_text(max_size=30)),
    value=st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**53), 2**53),
            st.floats(allow_nan=False, allow_infinity=False),
            hostile_text(max_size=40),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(hostile_text(max_size=10), inner, max_size=3)
        ),
        max_leaves=8,
    ),
)
def test_hostile_metadata_round_trips_through_the_store_or_is_refused(repo: Path, key: str, value: Any) -> None:
    from conveyor.runtime import StepContext

    ctx = StepContext(pipeline_name="p", run_id="r", run_name="r", step_id="s", step_name="s", attempt=1)
    try:
        ctx.log_metadata({key: value})
    except ConfigError as exc:
        if exc.message.startswith("metadata key"):
            assert not key or not key.isprintable() or len(key) > 255
        elif exc.message.startswith("the metadata logged come to"):  # the size limit, counted as stored
            stored = json.dumps({key: value}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert len(stored.encode()) > MAX_METADATA_BYTES
        else:  # text no database keeps, anywhere in the value
            assert "\\u0000" in json.dumps(value) and "NUL character" in exc.message
        assert "\n" not in exc.message.replace("'\\n'", "")
        return
    store = Client().store
    version = store.get_or_create_model_version("meta", key="fixed")
    run = store.list_runs(limit=1)
    if not run:
        write_module(
            repo,
            "one_step",
            "from conveyor import pipeline, step\n@step\ndef s() -> int:\n    return 1\n@pipeline\ndef p() -> None:\n    s()\n",
        )
        import one_step

        one_step.p()
        run = store.list_runs(limit=1)
    step_run = store.list_step_runs(run[0].id)[0]
    store.link_model_version(
        version.id, run_id=run[0].id, step_run_id=step_run.id, role="produced", metadata=ctx.logged_metadata
    )
    links = store.list_model_version_links(version_id=version.id)
    assert json.loads(json.dumps(links[-1].metadata)) == json.loads(json.dumps(ctx.logged_metadata))


def test_the_readme_models_example_runs(repo: Path) -> None:
    import re
    import subprocess

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("## Models") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    (repo / "readme_models.py").write_text(code.group(1))
    done = subprocess.run([sys.executable, "readme_models.py"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    version = Client().get_model_version("churn", "production")
    assert version.number == 1 and version.metadata == {"accuracy": 0.93}
    assert Client().get_pipeline("scoring").last_run.steps["predict"].outputs["output"].load() == pytest.approx(0.6)
