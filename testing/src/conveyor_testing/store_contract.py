"""What every metadata store must do for finding, cleaning up and recording steps, checked through the interface alone.

:func:`check_finding_and_cleanup` runs against any :class:`conveyor.stores.MetadataStore`
(the SQL store on SQLite, MariaDB or PostgreSQL, the REST store): it writes a small
history through the interface and checks id prefixes, ``latest``, tags, logged metadata, artifact
filters (with names holding SQL wildcard characters), deleting runs and what
becomes garbage. :func:`check_recording_steps` checks how steps are started and
completed: version numbers (also for writers racing for one name), retries, and
that nothing is recorded into a run that was settled. The store must be empty.
"""

from __future__ import annotations

import threading
from typing import Any

from conveyor.exceptions import AmbiguousIdError, NotFoundError, RunSettledError, StoreError
from conveyor.stores import MetadataStore, RunStatus


def _artifact(name: str, pipeline: str | None, step: str | None, uri: str) -> dict[str, Any]:
    return {
        "name": name,
        "pipeline_name": pipeline,
        "step_id": step,
        "uri": uri,
        "data_type": "builtins:int",
        "materializer": "conveyor.materializers._builtin:BuiltInMaterializer",
        "content_hash": "0" * 64,
        "manifest": {"data.json": 1},
    }


def _run(store: MetadataStore, pipeline_id: str, deployment_id: str, name: str, tags: list[str]) -> Any:
    return store.create_run(
        name=name,
        pipeline_id=pipeline_id,
        deployment_id=deployment_id,
        status=RunStatus.COMPLETED,
        stack_name="default",
        orchestrator="local",
        tags=tags,
    )


_LOGGED = {"accuracy": 0.93, "rows": 2**62, "note": "ünï 'x'", "nested": {"a": [1, None, True]}}


def _step(store: MetadataStore, run_id: str, step_id: str, outputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    started = store.start_step_run(
        run_id, step_id, step_name=step_id, source="m:f", code_hash="h", logs_uri=f"/logs/{run_id}/{step_id}"
    )
    assert started.metadata is None
    made = store.complete_step_run(started.id, inputs={}, new_artifacts=outputs, metadata=_LOGGED)
    assert store.get_step_run(started.id).metadata == _LOGGED, "logged metadata reads back as it was logged"
    return made


def check_finding_and_cleanup(store: MetadataStore) -> None:
    """Raise AssertionError where ``store`` breaks the rules (see the module docstring)."""
    pipeline = store.get_or_create_pipeline("p_1")
    store.save_deployment("d" * 32, pipeline.id, "{}")
    first = _run(store, pipeline.id, "d" * 32, "first", ["nightly", "a_b"])
    made = _step(
        store,
        first.id,
        "fit",
        {
            "model": _artifact("p_1::fit::a_b", "p_1", "fit", "/a/1"),
            "other": _artifact("p_1::fit::axb", "p_1", "fit", "/a/2"),
        },
    )
    second = _run(store, pipeline.id, "d" * 32, "second", [])
    # second reuses first's model from the cache and makes a saved-name artifact of its own
    store.record_step_run(
        second.id,
        "fit",
        status=RunStatus.CACHED,
        cached=True,
        step_name="fit",
        source="m:f",
        code_hash="h",
        logs_uri=f"/logs/{first.id}/fit",
        metadata=_LOGGED,
        outputs={"model": made["model"]},
    )
    assert [s.metadata for s in store.list_step_runs(second.id)] == [_LOGGED]
    _step(store, second.id, "publish", {"output": _artifact("champion", "p_1", "publish", "/a/3")})
    saved = store.create_artifact_version(**_artifact("champion", None, None, "/a/4"))
    assert saved.version == 2, "a saved value numbers on in the same sequence"

    # -- ids, names, latest
    assert store.get_run("latest").id == second.id
    assert store.get_run(first.id[:4]).id == first.id
    assert store.get_run(first.id[:6].upper()).id == first.id
    assert store.resolve_id("artifact", made["model"][:5]) == made["model"]
    assert store.get_artifact(made["other"][:8]).name == "p_1::fit::axb"
    for bad in ("", "abc", "zzzz", "%%%%", "____", "ab'--", first.id + "0"):
        try:
            store.resolve_id("run", bad)
        except NotFoundError:
            continue
        raise AssertionError(f"resolve_id('run', {bad!r}) found something")
    try:
        store.resolve_id("nonsense", "abcd")
    except StoreError:
        pass
    else:
        raise AssertionError("an unknown kind was accepted")

    # -- tags
    assert first.tags == ("a_b", "nightly") and second.tags == ()
    assert [r.id for r in store.list_runs(tags=["a_b"])] == [first.id]
    assert store.list_runs(tags=["a%"]) == [] and store.list_runs(tags=["a_"]) == []
    assert store.tag_run(second.id, add=["nightly", "x"], remove=["never"]) == ("nightly", "x")
    assert [r.id for r in store.list_runs(tags=["nightly"])] == [second.id, first.id]
    assert [r.id for r in store.list_runs(tags=["nightly", "x"])] == [second.id]
    assert store.tag_run(second.id, remove=["x"]) == ("nightly",)

    # -- artifacts: names, filters, who uses them
    assert [a.name for a in store.list_artifacts("a_b")] == ["p_1::fit::a_b"], "'_' is no wildcard"
    assert {a.name for a in store.list_artifacts("champion")} == {"champion"}
    assert {a.id for a in store.list_artifacts(pipeline="p_1")} == {
        *made.values(),
        store.list_artifacts(step="publish")[0].id,
    }
    assert store.list_artifacts(pipeline="p%") == []
    assert len(store.list_artifacts(limit=2)) == 2
    assert {r.id for r in store.runs_using_artifact(made["model"])} == {first.id, second.id}
    assert store.unreferenced_artifacts() == []

    # -- deleting a run keeps what another run uses; what nobody uses becomes garbage
    try:
        running = _run(store, pipeline.id, "d" * 32, "running", [])
        store.update_run(running.id, status=RunStatus.RUNNING)
        store.delete_run(running.id)
    except StoreError as exc:
        assert "is running" in exc.message
    else:
        raise AssertionError("a running run was deleted without force")
    store.delete_run(running.id, force=True)
    logs = store.delete_run(first.id)
    assert logs == [], "fit's logs are still shown by second's cached step"
    try:
        store.get_run(first.id)
    except NotFoundError:
        pass
    else:
        raise AssertionError("a deleted run is still there")
    assert store.get_artifact(made["model"]).producer_step_run_id is None
    assert [a.id for a in store.unreferenced_artifacts()] == [made["other"]]
    store.mark_artifact_removed(made["other"])
    assert store.get_artifact(made["other"]).removed is not None
    assert store.unreferenced_artifacts() == []
    assert made["other"] not in {a.id for a in store.list_artifacts()}
    assert made["other"] in {a.id for a in store.list_artifacts(removed=True)}
    published = store.list_artifacts(step="publish")[0].id
    assert sorted(store.delete_run(second.id)) == sorted([f"/logs/{first.id}/fit", f"/logs/{second.id}/publish"])
    assert {a.id for a in store.unreferenced_artifacts()} == {made["model"], published}
    assert saved.id not in {a.id for a in store.unreferenced_artifacts()}, "saved values are never garbage"
    try:
        store.get_run("latest")
    except NotFoundError:
        pass
    else:
        raise AssertionError("latest found a run in a store without runs")

    # -- a prefix that fits two, and one too short to look up
    for suffix in ("1", "2"):
        store.create_run(
            id="abcd" + suffix * 28,
            name=f"twin{suffix}",
            pipeline_id=pipeline.id,
            deployment_id="d" * 32,
            status=RunStatus.COMPLETED,
            stack_name="default",
            orchestrator="local",
        )
    try:
        store.resolve_id("run", "abcd")
    except AmbiguousIdError as exc:
        assert "abcd1111" in exc.message and "abcd2222" in exc.message
    else:
        raise AssertionError("an ambiguous prefix found one run")
    assert store.get_run("ABCD2").name == "twin2"
    try:
        store.resolve_id("run", "abc")
    except NotFoundError:
        pass
    else:
        raise AssertionError("a 3-character prefix was looked up")


def check_recording_steps(store: MetadataStore, *, racers: int = 8) -> None:
    """Raise AssertionError where ``store`` records steps wrongly (see the module docstring)."""
    pipeline = store.get_or_create_pipeline("recorder")
    store.save_deployment("e" * 32, pipeline.id, "{}")

    def running(name: str) -> Any:
        return store.create_run(
            name=name,
            pipeline_id=pipeline.id,
            deployment_id="e" * 32,
            status=RunStatus.RUNNING,
            stack_name="default",
            orchestrator="local",
        )

    def start(run_id: str, step_id: str) -> Any:
        return store.start_step_run(
            run_id, step_id, require_running=True, step_name=step_id, source="m:f", code_hash="h", parameters={}
        )

    # -- numbering: one past the newest version of each name, several outputs in one step
    run = running("rec-1")
    first = start(run.id, "make")
    assert (first.status, first.attempts) == (RunStatus.RUNNING, 1)
    made = store.complete_step_run(
        first.id,
        inputs={},
        new_artifacts={
            "a": _artifact("rec::a", "recorder", "make", "/a/1"),
            "b": _artifact("rec::b", "recorder", "make", "/b/1"),
        },
        require_running=True,
    )
    assert set(made) == {"a", "b"}
    done = store.get_step_run(first.id)
    assert done.status == RunStatus.COMPLETED and done.ended is not None
    a1 = store.get_artifact(made["a"])
    assert (a1.name, a1.version, a1.uri, a1.manifest) == ("rec::a", 1, "/a/1", {"data.json": 1})
    assert a1.metadata == {} and a1.visualizations == {}
    assert store.get_artifact(made["b"]).version == 1
    assert store.step_run_artifacts(first.id, inputs=False) == {"a": a1, "b": store.get_artifact(made["b"])}

    # -- a failed attempt, then a retry that reads the first step's output
    use = start(run.id, "use")
    store.finish_step_run(use.id, RunStatus.FAILED, error="boom")
    again = start(run.id, "use")
    assert (again.id, again.attempts, again.status, again.error) == (use.id, 2, RunStatus.RUNNING, None)
    used = store.complete_step_run(
        again.id,
        inputs={"x": made["a"]},
        new_artifacts={"out": {**_artifact("rec::a", "recorder", "use", "/a/2"), "metadata": {"k": 1}}},
        require_running=True,
    )
    a2 = store.get_artifact(used["out"])
    assert (a2.version, a2.metadata) == (2, {"k": 1})
    assert store.step_run_artifacts(again.id, inputs=True) == {"x": a1}

    # -- a settled run takes nothing more: no new step, no completion, no artifact
    late = start(run.id, "late")
    assert store.settle_run(run.id, RunStatus.FAILED, error="its driver was killed")
    for attempt in (
        lambda: start(run.id, "later"),
        lambda: store.complete_step_run(
            late.id, inputs={}, new_artifacts={"o": _artifact("rec::late", None, None, "/late")}, require_running=True
        ),
    ):
        try:
            attempt()
        except RunSettledError as exc:
            assert "rec-1" in exc.message and "failed" in exc.message
        else:
            raise AssertionError("a step was recorded into a settled run")
    assert store.get_step_run(late.id).status == RunStatus.RUNNING
    assert {s.step_id for s in store.list_step_runs(run.id)} == {"make", "use", "late"}
    assert store.list_artifacts("rec::late") == []

    # -- writers racing for one name each get their own number
    racing = running("rec-race")
    steps = [start(racing.id, f"racer_{i}") for i in range(racers)]
    barrier = threading.Barrier(racers)
    errors: list[BaseException] = []

    def complete(i: int) -> None:
        try:
            barrier.wait()
            art = _artifact("rec::raced", "recorder", f"racer_{i}", f"/raced/{i}")
            store.complete_step_run(steps[i].id, inputs={}, new_artifacts={"o": art}, require_running=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors
    raced = store.list_artifacts("rec::raced")
    assert sorted(a.version for a in raced) == list(range(1, racers + 1))
    assert sorted(a.uri for a in raced) == sorted(f"/raced/{i}" for i in range(racers))
