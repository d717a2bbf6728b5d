"""The conformance suite: the same example pipelines, on any stack, same results.

Each :class:`Case` names a pipeline in ``examples/conformance`` with its
parameters, the statuses its steps must end in, and values some outputs must
load as. :func:`run_case` runs a case on a stack; :func:`artifact_hashes`
gives the content hash of every output so two stacks can be compared byte
for byte. :class:`OrchestratorContract` turns that into the tests every
orchestrator's integration suite inherits.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CASES",
    "EXAMPLES",
    "FAILING_STEP_ERROR",
    "REPO_ROOT",
    "SERVER_CASE",
    "SERVER_SECRET",
    "Case",
    "OrchestratorContract",
    "artifact_hashes",
    "case",
    "check_run",
    "load_pipeline",
    "run_case",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples" / "conformance"


@dataclass(frozen=True)
class Case:
    """One conformance pipeline run."""

    name: str
    module: str
    pipeline: str
    params: dict[str, Any] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """``{step id: final status}`` for every step."""
    expected: dict[str, Any] = field(default_factory=dict)
    """``{"step.output": value}`` that outputs must load as."""
    fails: bool = False


def _sum_sq(values: list[float]) -> float:
    return sum(v * v for v in values)


_FAN_VALUES = [i / 4 for i in range(12)]
_BRANCHES = [_sum_sq(_FAN_VALUES[i::4]) for i in range(4)]

CASES: list[Case] = [
    Case(
        name="quickstart",
        module="quickstart",
        pipeline="quickstart",
        params={"n": 20},
        statuses=dict.fromkeys(("load_data", "split", "total", "total_2"), "completed"),
        expected={
            "load_data.numbers": list(range(20)),
            "split.even": list(range(0, 20, 2)),
            "split.odd": list(range(1, 20, 2)),
            "total.output": 90,
            "total_2.output": 100,
        },
    ),
    Case(
        name="fan_out",
        module="fan_out",
        pipeline="fan_out",
        params={"width": 4},
        statuses=dict.fromkeys(
            ("source", "branch", "branch_2", "branch_3", "branch_4", "join", "announce"), "completed"
        ),
        expected={
            "source.values": _FAN_VALUES,
            "branch_3.output": _BRANCHES[2],
            "join.summary": {"total": sum(_BRANCHES), "largest": max(_BRANCHES)},
            "announce.note": "join finished",
        },
    ),
    Case(
        name="rich_outputs",
        module="rich_outputs",
        pipeline="rich_outputs",
        params={"seed": 5},
        statuses={"make": "completed", "describe": "completed"},
        expected={
            "make.counts": {"k0": 0, "k1": 5, "k2": 3, "k3": 1, "k4": 6},
            "make.record": (5, "row", 5 / 3),
            "make.tags": {"alpha", "beta", "s5"},
            "make.blob": bytes(range(5)) + b"\x00\xff",
            "make.nothing": None,
            "describe.output": "5 counts, tags=['alpha', 'beta', 's5'], record=(5, 'row', 1.6666666666666667)",
        },
    ),
    Case(
        name="pydantic_param",
        module="pydantic_param",
        pipeline="pydantic_param",
        params={},
        statuses={"data_points": "completed", "train": "completed"},
        expected={"data_points.output": [1.0, 2.0, 3.0, 4.0, 5.0]},
    ),
    Case(
        name="failing_step",
        module="failing_step",
        pipeline="failing_step",
        statuses={"start": "completed", "explode": "failed", "after_explode": "skipped", "independent": "completed"},
        expected={"start.output": 3, "independent.output": 6},
        fails=True,
    ),
]


SERVER_SECRET = "conformance_secret"
"""The secret the ``server_secret`` pipeline's first step declares and reads (its key ``token``)."""

SERVER_CASE = Case(
    name="server_secret",
    module="server_secret",
    pipeline="server_secret",
    statuses={"read_secret": "completed", "after_secret": "completed"},
)
"""The case run through a conveyor server: a step that reads a declared secret, and a step after it.
Each step's output reports its process's environment (the secret's value blanked out). Not in
:data:`CASES`: it needs the secret, and its outputs differ from run to run."""


def case(name: str) -> Case:
    """The case of this name."""
    return next(c for c in CASES if c.name == name)


def load_pipeline(c: Case) -> Any:
    """Import the case's pipeline object from ``examples/conformance``."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return getattr(importlib.import_module(c.module), c.pipeline)


def run_case(c: Case, stack: str | None = None, **options: Any) -> Any:
    """Run a case (cache off) on a stack; returns the run view, also when it failed."""
    from conveyor import Client
    from conveyor.exceptions import StepFailedError

    pipe = load_pipeline(c).with_options(enable_cache=False, stack=stack, **options)
    try:
        run = pipe(**c.params)
    except StepFailedError:
        if not c.fails:
            raise
        return Client().get_pipeline(pipe.name).last_run
    if c.fails:
        raise AssertionError(f"case {c.name} should have failed but its run ended {run.status}")
    return run


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


def check_run(c: Case, run: Any) -> None:
    """Assert statuses and expected values of a case's run."""
    statuses = {sid: s.status for sid, s in run.steps.items()}
    assert statuses == c.statuses, f"{c.name}: statuses {statuses} != {c.statuses}"
    assert run.status == ("failed" if c.fails else "completed"), f"{c.name}: run ended {run.status}"
    for key, value in c.expected.items():
        step_id, output = key.split(".")
        loaded = run.steps[step_id].outputs[output].load()
        assert _same(loaded, value), f"{c.name}: {key} loaded {loaded!r}, expected {value!r}"


def artifact_hashes(run: Any) -> dict[str, str]:
    """``{"step.output": content hash}`` of every output of a run."""
    return {f"{sid}.{name}": art.content_hash for sid, step in run.steps.items() for name, art in step.outputs.items()}


FAILING_STEP_ERROR = "ValueError: bad input 3"
"""What the ``explode`` step of the ``failing_step`` case raises, as its traceback's last line says it."""


class OrchestratorContract:
    """The tests every orchestrator owes: each conformance pipeline gives the local stack's artifacts.

    An adapter's integration tests subclass it (the subclass's name starts
    with ``Test``, and it carries the ``integration`` marker and the engine's
    own) and provide one fixture, ``conformance_stack``: the name of a
    registered stack that runs on the engine, in the test's repository
    (the ``repo`` fixture). They inherit:

    * ``test_conformance_case_gives_the_reference_artifacts[<case>]`` for each
      case of :data:`CASES` that succeeds: the run on the engine ends with the
      case's statuses and values (:func:`check_run`), records the stack, and
      its artifacts hash the same as a run of the same case on the reference
      stack (:func:`artifact_hashes`);
    * ``test_failing_step_fails_the_run_and_keeps_its_traceback``: the
      ``failing_step`` case on the engine fails the run, skips the failed
      step's downstream, finishes the independent branch, keeps the step's
      printed output and traceback in its log, records the error on the run,
      and gives the reference stack's artifacts.

    Optional hooks:

    * the ``reference_stack`` fixture: the stack whose run is the reference
      (``"default"``, the local orchestrator; content hashes do not depend on
      the artifact store, so a reference on the engine's store works too);
    * :meth:`run_on_engine`: how a case runs on the engine; by default
      :func:`run_case` (the pipeline called with the stack), override it to
      export and run with the engine's own tools, returning the run view;
    * :meth:`check_engine_run`: the engine's own assertions on each run.

    And through a conveyor server,
    ``test_a_run_through_the_server_leaves_no_credential_behind``: the
    :data:`SERVER_CASE` run on the engine while the repository is a conveyor
    server (``conveyor_server_short_leeway``; the driver holds
    ``CONVEYOR_SERVER`` and an admin's API key, no secrets key). Its step reads
    the declared secret (by the step context and by an ``{{name.key}}``
    environment reference), and then nothing the engine keeps holds the
    server's database URL, its secrets key, the admin's key or password, or
    the secret's value: not the step processes' environments (as they started,
    and as they ran), not ``docker inspect`` of step containers (when
    :attr:`steps_in_containers`), not the step images' layers, not what
    :meth:`server_leak_surfaces` names (exported DAG files, specs, the engine's
    own records). The step processes hold a run token, which stops working
    once the run has settled. Engines whose workers join runs by run key hold
    a ``runner`` service account's key, which may be in a worker's and a step
    container's environment but in nothing written (files, records, images).
    Its hooks:

    * the ``server_stack`` fixture: the engine's stack registered on the
      server (default: the ``conformance_stack`` fixture, set up after
      ``server_repository`` made the repository the server);
    * :meth:`run_through_server`: how the case runs, given the runner key for
      the engine's workers (default: :meth:`run_on_engine`; the driver mints
      the steps' tokens);
    * :meth:`server_leak_surfaces`: files, folders and images to scan besides
      those above (default: the repository's folder);
    * :attr:`steps_in_containers`: steps run in Docker containers on this machine;
    * :meth:`steps_run_in_the_driver`: steps run as threads of the driver's
      own process (which holds the driver's credential, as ``local`` in
      thread mode does): their environments are the driver's and are not checked.

    A minimal adapter test module::

        import pytest
        from conveyor import Client
        from conveyor_testing.conformance import OrchestratorContract

        pytestmark = [pytest.mark.integration, pytest.mark.dagster]


        class TestDagsterConformance(OrchestratorContract):
            @pytest.fixture
            def conformance_stack(self, repo, dagster_home) -> str:
                client = Client()
                client.register_component("orchestrator", "dg", "dagster", {})
                client.register_stack("on_dagster", {"orchestrator": "dg", "artifact_store": "default"})
                return "on_dagster"

            def check_engine_run(self, case, run, reference, request) -> None:
                assert run.orchestrator == "dagster"
    """

    steps_in_containers: bool = False
    """Whether the engine's steps run in Docker containers on this machine (their ``docker inspect`` is scanned)."""

    @pytest.fixture(params=[c for c in CASES if not c.fails], ids=lambda c: c.name)
    def conformance_case(self, request: pytest.FixtureRequest) -> Case:
        """Each conformance case whose run succeeds (the failing one has its own test)."""
        return request.param

    @pytest.fixture
    def conformance_stack(self) -> str:
        """The stack that runs on the engine: every subclass provides this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a conformance_stack fixture", pytrace=False)

    @pytest.fixture
    def reference_stack(self) -> str:
        """The stack whose artifacts the engine's must match: the local orchestrator's ``default``."""
        return "default"

    def run_on_engine(self, case: Case, stack: str, request: pytest.FixtureRequest) -> Any:
        """Run ``case`` on the engine's ``stack``; return its run view (also when the run failed).

        ``request`` gives the test's other fixtures (``request.getfixturevalue``).
        """
        return run_case(case, stack=stack)

    def check_engine_run(self, case: Case, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        """The engine's own assertions on a run of ``case`` (``reference`` is the reference stack's run)."""

    def _run_both(self, c: Case, stack: str, reference_stack: str, request: pytest.FixtureRequest) -> tuple[Any, Any]:
        reference = run_case(c, stack=reference_stack)
        check_run(c, reference)
        run = self.run_on_engine(c, stack, request)
        check_run(c, run)
        assert run.id != reference.id, "the engine's run is the reference run"
        assert run.stack_name == stack, f"{c.name}: the run recorded stack {run.stack_name!r}, not {stack!r}"
        assert artifact_hashes(run) == artifact_hashes(reference), f"{c.name}: artifacts differ from {reference_stack}"
        self.check_engine_run(c, run, reference, request)
        return run, reference

    def test_conformance_case_gives_the_reference_artifacts(
        self,
        conformance_case: Case,
        repo: Path,
        conformance_stack: str,
        reference_stack: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """Every successful conformance case: same statuses, values and artifact hashes as the reference."""
        self._run_both(conformance_case, conformance_stack, reference_stack, request)

    def test_failing_step_fails_the_run_and_keeps_its_traceback(
        self,
        repo: Path,
        conformance_stack: str,
        reference_stack: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """The failing case: the run fails, downstream is skipped, the log keeps the step's output and traceback."""
        c = case("failing_step")
        run, _ = self._run_both(c, conformance_stack, reference_stack, request)
        assert run.status == "failed"
        assert FAILING_STEP_ERROR.split(": ", 1)[1] in (run.error or ""), f"the run's error: {run.error!r}"
        explode = run.steps["explode"]
        assert explode.outputs == {}
        logs = explode.logs()
        assert "about to fail" in logs and "Traceback" in logs and FAILING_STEP_ERROR in logs, logs

    # -- through a conveyor server --------------------------------------------------------------------------------
    @pytest.fixture
    def server_repository(
        self, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
    ) -> Any:
        """The test's repository is a conveyor server (``conveyor_server_short_leeway``, wiped): this process holds
        ``CONVEYOR_SERVER`` and an admin's API key, and no secrets key or store URL. Returns the server."""
        from conveyor.client import close_stores
        from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER

        server = request.getfixturevalue("conveyor_server_short_leeway")
        server.reset()
        close_stores()
        for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER, "CONVEYOR_STORE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(tmp_path / "config"))  # no profile of this machine's user
        monkeypatch.setenv("CONVEYOR_SERVER", server.url)
        monkeypatch.setenv("CONVEYOR_API_KEY", server.admin_key)
        return server

    @pytest.fixture
    def server_stack(self, server_repository: Any, conformance_stack: str) -> str:
        """The engine's stack registered on the server: by default the ``conformance_stack`` fixture, set up once
        the repository is the server. Override it when that fixture picks another store."""
        return conformance_stack

    def run_through_server(self, case: Case, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        """Run ``case`` on the engine through the server; return its run view.

        ``runner_key`` is the API key of a ``runner`` service account: what an
        engine's workers hold when they join runs by run key (give it to the
        workers, never to what is written for them). By default the case runs
        as :meth:`run_on_engine` runs it, with the driver's credential only.
        """
        return self.run_on_engine(case, stack, request)

    def steps_run_in_the_driver(self, request: pytest.FixtureRequest) -> bool:
        """Whether the engine runs steps inside the driver's own process (threads of the process that called the
        pipeline), which holds the driver's credential: then the steps' environments are not checked. Default: no."""
        return False

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        """What the engine kept of the run, to scan: files and folders, and images (``"docker-image:REF"``).

        Default: the repository's folder. Add the exported files, the engine's
        own records (its database, its logs) and anything else it writes.
        """
        return [request.getfixturevalue("repo")]

    def test_a_run_through_the_server_leaves_no_credential_behind(
        self, server_repository: Any, server_stack: str, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        """A step reads a declared secret through the server; nothing the engine keeps holds a lasting credential."""
        from conveyor import Client
        from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
        from conveyor_testing.leaks import find_values
        from conveyor_testing.server import SHORT_LEEWAY

        server, stack = server_repository, server_stack
        client = Client()
        assert client.store.backend == "rest" and client.store.display_url == server.url, "not the server's repository"
        assert stack in {s.name for s in client.list_stacks()}, f"stack {stack!r} is not registered on the server"
        value = "conformance-" + secrets.token_hex(16)
        client.create_secret(SERVER_SECRET, {"token": value})
        runner_key = server.create_service_account("engine-workers", "runner")

        with _containers(self.steps_in_containers, tmp_path / "containers") as inspected:
            run = self.run_through_server(SERVER_CASE, stack, request, runner_key)
        check_run(SERVER_CASE, run)
        assert run.stack_name == stack
        reports = {sid: run.steps[sid].output.load() for sid in SERVER_CASE.statuses}
        assert reports["read_secret"]["digest"] == hashlib.sha256(value.encode()).hexdigest(), "the secret read"
        assert reports["read_secret"]["environment_resolved"] is True, "the {{name.key}} reference"

        # What each step process held: the server's URL and a token of its run.
        held = tmp_path / "step-environments"
        held.mkdir()
        tokens: set[str] = set()
        unseal = importlib.import_module(SERVER_CASE.module).unseal
        in_driver = self.steps_run_in_the_driver(request)
        for sid, seen in reports.items():
            seen.update(environ=unseal(seen["environ"]), start_environ=unseal(seen["start_environ"]))
            if in_driver:
                continue  # the driver's own process: what it holds is the driver's (the run's user's)
            env = seen["environ"]
            # The server's URL comes as CONVEYOR_SERVER, or as a store URL written for the engine's workers.
            assert server.url in (env.get("CONVEYOR_SERVER"), env.get("CONVEYOR_STORE_URL")), f"{sid}: {sorted(env)}"
            assert env.get("CONVEYOR_STORE_URL", server.url) == server.url, f"{sid}: a store other than the server"
            assert env.get("CONVEYOR_API_KEY", "").startswith("cvr_"), f"{sid} ran without a run token"
            for leaked in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
                assert leaked not in env, f"{sid}: {leaked}"
            for name in ("environ", "start_environ"):
                tokens.update(v for v in seen[name].values() if v.startswith("cvr_"))
                (held / f"{sid}.{name}.json").write_text(json.dumps(seen[name]))
        if self.steps_in_containers:
            assert inspected, "no step container was seen (docker events)"
            for path in inspected:
                for container in json.loads(path.read_text()):
                    tokens.update(
                        e.split("=", 1)[1]
                        for e in container["Config"]["Env"] or []
                        if e.startswith("CONVEYOR_API_KEY=cvr_")
                    )

        server_key = (server.data_dir / "secrets.key").read_text().strip()
        never = {
            "the server's database URL": server.store_url,
            "the server's database file": str(server.data_dir / "conveyor.db"),
            "the server's secrets key": server_key,
            "the admin's API key": server.admin_key,
            "the admin's password": server.admin_password,
            "the secret's value": value,
        }
        # Workers (and the step containers they start) hold the runner key; nothing written for them does.
        worker_side = [*([] if in_driver else [held]), *inspected]
        hits = find_values(worker_side, never)
        assert hits == [], "\n".join(map(str, hits))
        written = [*self.server_leak_surfaces(run, request), *_step_images(run)]
        hits = find_values(written, {**never, "the runner's API key": runner_key})
        assert hits == [], "\n".join(map(str, hits))

        # Every run token a step held stops working once the run has settled (plus the server's leeway).
        assert tokens or in_driver, "no run token was seen"
        ended = run.refresh().ended
        assert ended is not None, "the run has not settled"
        if ended.tzinfo is None:
            ended = ended.replace(tzinfo=timezone.utc)
        time.sleep(max(0.0, ended.timestamp() + SHORT_LEEWAY + 0.5 - time.time()))
        for token in sorted(tokens):
            status, _ = server.request("GET", "/api/me", token=token)
            assert status == 401, f"a run token still works after the run settled: {status}"


@contextlib.contextmanager
def _containers(watch: bool, folder: Path) -> Iterator[list[Path]]:
    if not watch:
        yield []
        return
    from conveyor_testing.leaks import inspected_containers

    with inspected_containers(folder) as found:
        yield found


def _step_images(run: Any) -> list[str]:
    images = {s.image for s in run.steps.values() if s.image}
    return [f"docker-image:{image}" for image in sorted(images)]
