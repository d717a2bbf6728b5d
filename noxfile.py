"""Test sessions: one per layer and engine, each in its own environment.

``nox`` runs them all (what CI runs); ``nox -s core`` runs one. Engines that
cannot share an environment (Airflow and Prefect pin different FastAPI
versions; kfp pins protobuf) each get their own. Servers (MariaDB,
PostgreSQL, SeaweedFS, Docker, a registry, Prefect, Airflow, conveyor servers) are started by
the tests' fixtures; ``scripts/bootstrap.sh`` installs them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
PYTHON = "3.11"
PYTEST = ["pytest>=8", "hypothesis>=6.100", "pytest-xdist>=3.6"]
# The big suites run on every core: their tests wait on processes and servers as much as they compute.
# One test file stays on one worker (its module fixtures, such as a server, start once).
PARALLEL = ("-n", "auto", "--dist", "loadfile")
# The docker image builder's wheels, prepared once for every session (each input once, published atomically).
WHEEL_CACHE = str(ROOT / ".nox" / "wheel-cache")
# A real Jupyter kernel runs the notebook tests.
NOTEBOOK = ["nbclient>=0.10", "ipykernel>=6.29", "nbformat>=5.10"]
# The package index here lacks certifi >= 2026.10.19, which the newest kfp and
# Prefect releases ask for; the release before it works with both.
OVERRIDES = str(ROOT / "constraints" / "overrides.txt")


def _install(session: nox.Session, *args: str) -> None:
    # Byte-compile at install time: PYTHONDONTWRITEBYTECODE is set on these
    # machines, and without .pyc files every process recompiles its imports.
    session.install("--compile-bytecode", "--override", OVERRIDES, *args)


def _pytest(
    session: nox.Session,
    *paths: str,
    args: tuple[str, ...] = (),
    success_codes: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
) -> None:
    # Editable checkouts are not byte-compiled at install time: let the first
    # process write .pyc files so that the step processes the tests start
    # do not all compile conveyor from source again.
    return session.run(
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(ROOT),
        *paths,
        *args,
        *session.posargs,
        env={"PYTHONDONTWRITEBYTECODE": "", "CONVEYOR_TEST_WHEEL_CACHE": WHEEL_CACHE, **(env or {})},
        success_codes=list(success_codes),
    )


# Each distribution's tests, as the unit session runs them (one pytest each: every suite
# keeps its own conftest and helper modules, as in its own session).
UNIT_SUITES = {
    "core": ("core/tests", "--ignore=core/tests/browser"),
    "testing": ("testing/tests",),
    "airflow": ("adapters/airflow/tests",),
    "kubeflow": ("adapters/kubeflow/tests",),
    "prefect": ("adapters/prefect/tests",),
    "dagster": ("adapters/dagster/tests",),
    "docker": ("integrations/docker/tests",),
    "alerters": ("integrations/alerters/tests",),
    "data": ("plugins/data/tests",),
}
NO_TESTS_COLLECTED = 5  # pytest's exit code when nothing was selected


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and one format over the whole tree."""
    _install(session, "ruff==0.17.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over core: strict on the IR, the stores, stacks and the adapter API."""
    _install(session, "mypy==2.4.1", "./core[mysql,postgres,s3,server]")
    session.run("mypy", "--config-file", str(ROOT / "pyproject.toml"), env={"MYPYPATH": str(ROOT / "core" / "src")})


@nox.session(python=PYTHON)
def quickstart(session: nox.Session) -> None:
    """The README's first command: a plain (non-editable) install runs the quickstart; every printed install
    command resolves from the clone."""
    _install(session, "./core")
    tmp = str(Path(session.create_tmp()).resolve())
    session.chdir(tmp)
    session.run("python", str(ROOT / "examples" / "quickstart" / "run.py"), env={"CONVEYOR_REPOSITORY": tmp})
    session.run("python", str(ROOT / "examples" / "quickstart" / "run.py"), env={"CONVEYOR_REPOSITORY": tmp})
    session.run("conveyor", "pipeline", "runs", "demo", env={"CONVEYOR_REPOSITORY": tmp})
    # Every install command the docs and error messages print resolves from this clone into an empty environment.
    fresh = str(Path(tmp) / "fresh")
    session.run("uv", "venv", "--quiet", "--clear", "--python", PYTHON, fresh, external=True)
    session.run("python", str(ROOT / "scripts" / "install_commands.py"), "--check", f"{fresh}/bin/python")


# Not in the default run: CI runs every distribution's session, which holds these same
# tests next to the ones with servers; `nox -s unit` is for a machine with no servers.
@nox.session(python=PYTHON, default=False)
def unit(session: nox.Session) -> None:
    """Every distribution's unit tests in one environment, with no server and no engine (``-m "not integration"``)."""
    # The engines' SDKs that unit tests import come with their adapters: kfp and
    # kfp-kubernetes (conveyor-kubeflow[test]: the spec is compared with kfp's own),
    # Prefect (a dependency of conveyor-prefect). Neither Airflow nor Dagster is
    # installed: their files are rendered from templates without them.
    _install(
        session,
        *PYTEST,
        *NOTEBOOK,
        "-e",
        "./core[mysql,postgres,s3,server]",
        "-e",
        "./testing[sql,docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./integrations/alerters[slack,apprise]",
        "-e",
        "./adapters/airflow",
        "-e",
        "./adapters/kubeflow[test]",
        "-e",
        "./adapters/prefect",
        "-e",
        "./adapters/dagster",
        "-e",
        "./plugins/data[all,test]",
    )
    # Not session.create_tmp(): it points TMPDIR into the environment, and code under
    # the environment's prefix counts as installed, not as the user's (the caching tests).
    reports = Path(tempfile.mkdtemp(prefix="conveyor-unit-reports-"))
    ran = 0
    try:
        for name, paths in UNIT_SUITES.items():
            report = reports / f"{name}.xml"
            # Exit code 5: arguments (say -k) selected none of this suite's tests; the other suites still count.
            if not _pytest(
                session,
                *paths,
                args=("-m", "not integration", f"--junitxml={report}"),
                success_codes=(0, NO_TESTS_COLLECTED),
            ):
                return  # --install-only
            ran += _tests_run(report)
    finally:
        shutil.rmtree(reports, ignore_errors=True)
    if ran == 0:
        session.error("no unit test was selected in any distribution")


def _tests_run(report: Path) -> int:
    """How many tests a pytest JUnit XML report says ran (0 if there is no report)."""
    import xml.etree.ElementTree as ET

    if not report.is_file():
        return 0
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """Core: unit tests, and the metadata store on real MariaDB and PostgreSQL, S3 on SeaweedFS."""
    _install(
        session,
        *PYTEST,
        *NOTEBOOK,
        "schemathesis>=4",
        "-e",
        "./core[mysql,postgres,s3,server]",
        "-e",
        "./testing[sql,s3,docker]",
    )
    _pytest(session, "core/tests", "testing/tests", "--ignore=core/tests/browser", args=PARALLEL)


def _rest_suite(session: nox.Session, store: str) -> None:
    _install(session, *PYTEST, *NOTEBOOK, "-e", "./core[mysql,postgres,s3,server]", "-e", "./testing[sql,s3,docker]")
    # The server's own tests (marker `server`) run in the core session already.
    _pytest(
        session,
        "core/tests",
        "-m",
        "not server",
        "--ignore=core/tests/browser",
        args=PARALLEL,
        env={"CONVEYOR_TEST_STORE": store},
    )


@nox.session(python=PYTHON)
def rest(session: nox.Session) -> None:
    """Core's suite again with every repository on a conveyor server over PostgreSQL (a team's deployment)."""
    _rest_suite(session, "rest-postgres")


# Not in the plain `nox` run, to keep CI short: the core session already runs the suite on SQLite itself,
# and `rest` runs it through the server; this is the server's default store under the same suite.
@nox.session(python=PYTHON, default=False)
def rest_sqlite(session: nox.Session) -> None:
    """Core's suite again with every repository on a conveyor server over its default SQLite file."""
    _rest_suite(session, "rest")


@nox.session(python=PYTHON)
def dashboard(session: nox.Session) -> None:
    """The dashboard in a real browser: Playwright driving Debian's Chromium, over conveyor ui and a server.

    Screenshots are kept under test-artifacts/dashboard/.
    """
    _install(session, *PYTEST, "playwright>=1.45", "-e", "./core[server]", "-e", "./testing[sql]")
    _pytest(session, "core/tests/browser", env={"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})


@nox.session(python=PYTHON)
def prefect(session: nox.Session) -> None:
    """The Prefect adapter against a real Prefect server (started by the tests)."""
    # Step images contain Prefect, and Prefect 3.9 needs a certifi the image cannot get here;
    # Prefect 3.8's server needs fastapi < 0.151. pip: the image builder runs `python -m pip wheel`.
    _install(
        session,
        *PYTEST,
        "pip",
        "prefect<3.9",
        "fastapi<0.151",
        "-e",
        "./core[postgres,s3,server]",
        "-e",
        "./testing[sql,s3,docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./adapters/prefect[docker]",
    )
    _pytest(session, "adapters/prefect/tests")


@nox.session(python=PYTHON)
def docker(session: nox.Session) -> None:
    """Containers: build, push, local_docker and the step operator, remote-like stores (real Docker, registry)."""
    # conveyor-airflow (without Airflow: its DAG files are written without it): the tests export into the project.
    _install(
        session,
        *PYTEST,
        *NOTEBOOK,
        "-e",
        "./core[mysql,postgres,s3,server]",
        "-e",
        "./testing[sql,s3,docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./adapters/airflow",
    )
    _pytest(session, "integrations/docker/tests")


@nox.session(python=PYTHON)
def airflow(session: nox.Session) -> None:
    """The Airflow adapter: golden files and safety without Airflow, then real Airflow 3 (dag.test, DagBag, REST API)."""
    # httpx2: the test client dag.test() loads warns without it (warnings are errors here).
    # pip: conveyor-docker's image builder runs `python -m pip wheel`.
    _install(
        session,
        *PYTEST,
        "httpx2",
        "pip",
        "apache-airflow==3.3.2",
        "apache-airflow-providers-standard",
        "apache-airflow-providers-docker",
        "apache-airflow-providers-cncf-kubernetes",
        "-e",
        "./core[server]",
        "-e",
        "./testing[docker,mlflow]",
        "-e",
        "./adapters/airflow",
        "-e",
        "./integrations/docker",
        # The experiment tracker on a remote engine: its steps run in this interpreter, next to a real `mlflow server`.
        "-e",
        "./integrations/mlflow",
    )
    _pytest(session, "adapters/airflow/tests")


@nox.session(python=PYTHON)
def kubeflow(session: nox.Session) -> None:
    """Kubeflow adapter: compiler, submission with kfp.Client to a recording API, conformance in kfp.local with Docker."""
    # pip: conveyor-docker's image builder runs `python -m pip wheel` in this interpreter; uv venvs have no pip.
    _install(
        session,
        *PYTEST,
        "pip",
        "-e",
        "./core[postgres,s3,server]",
        "-e",
        "./testing[sql,s3,docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./adapters/kubeflow[test]",
    )
    _pytest(session, "adapters/kubeflow/tests")


@nox.session(python=PYTHON)
def dagster(session: nox.Session) -> None:
    """The Dagster adapter: golden files and safety without Dagster, then real Dagster (execute_job, daemon, Docker)."""
    # pip: conveyor-docker's image builder runs `python -m pip wheel` in this interpreter; uv venvs have no pip.
    _install(
        session,
        *PYTEST,
        "pip",
        "dagster",
        "-e",
        "./core[server]",
        "-e",
        "./testing[docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./adapters/dagster[dagster,docker]",
    )
    _pytest(session, "adapters/dagster/tests")


@nox.session(python=PYTHON)
def template(session: nox.Session) -> None:
    """The template adapter (adapters/_template): its tests, then the tests of a copy made by scripts/new_adapter.py."""
    _install(session, *PYTEST, "-e", "./core[server]", "-e", "./testing", "-e", "./adapters/_template")
    _pytest(session, "adapters/_template/tests")
    # What a new engine starts from: a renamed copy, installed, passes its own unit tests once it has
    # written its golden files (they hold deployment ids, which change with the flavor's name). Its
    # integration tests run the same code as the template's, under another name: left out for time.
    work = Path(tempfile.mkdtemp(prefix="conveyor-new-adapter-"))
    try:
        if not session.run("python", str(ROOT / "scripts" / "new_adapter.py"), "example", "--into", str(work)):
            return  # --install-only
        _install(session, str(work / "example"))
        _pytest(
            session,
            str(work / "example" / "tests"),
            args=("-m", "not integration"),
            env={"CONVEYOR_UPDATE_GOLDEN": "1"},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@nox.session(python=PYTHON)
def alerters(session: nox.Session) -> None:
    """Alerter flavors: slack against a local stand-in of the Slack Web API, apprise against a recording server."""
    _install(session, *PYTEST, "-e", "./core", "-e", "./testing", "-e", "./integrations/alerters[slack,apprise]")
    _pytest(session, "integrations/alerters/tests")


@nox.session(python=PYTHON)
def data(session: nox.Session) -> None:
    """Data plugins: numpy, pandas, pyarrow and scikit-learn materializers, round trips with hypothesis."""
    _install(session, *PYTEST, "-e", "./core", "-e", "./testing", "-e", "./plugins/data[all,test]")
    _pytest(session, "plugins/data/tests")


@nox.session(python=PYTHON)
def mlflow(session: nox.Session) -> None:
    """conveyor-mlflow: the experiment tracker and model deployer against a real `mlflow server` (started by the tests)."""
    # conveyor-data[sklearn]: the continuous deployment example trains a scikit-learn model.
    _install(
        session,
        *PYTEST,
        # [auth]: the tests start a server that asks for a user name and password.
        "mlflow[auth]>=3.17",
        "-e",
        "./core",
        "-e",
        "./testing[mlflow]",
        "-e",
        "./plugins/data[pandas,sklearn]",
        "-e",
        "./integrations/pandera",
        "-e",
        "./integrations/mlflow",
    )
    _pytest(session, "integrations/mlflow/tests")


@nox.session(python=PYTHON)
def pandera(session: nox.Session) -> None:
    """conveyor-pandera: the data validator and the validation step on pandas DataFrames, its report on the dashboard."""
    # [server]: `conveyor ui` shows the validation report.
    _install(
        session,
        *PYTEST,
        "-e",
        "./core[server]",
        "-e",
        "./testing",
        "-e",
        "./plugins/data[pandas]",
        "-e",
        "./integrations/pandera",
    )
    _pytest(session, "integrations/pandera/tests")
