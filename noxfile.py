"""Test sessions: one per layer and engine, each in its own environment.

``nox`` runs them all (what CI runs); ``nox -s core`` runs one. Engines that
cannot share an environment (Airflow and Prefect pin different FastAPI
versions; kfp pins protobuf) each get their own. Servers (MariaDB,
PostgreSQL, SeaweedFS, Docker, a registry, Prefect, Airflow) are started by
the tests' fixtures; ``scripts/bootstrap.sh`` installs them.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
PYTHON = "3.11"
PYTEST = ["pytest>=8", "hypothesis>=6.100"]
# The package index here lacks certifi >= 2026.10.19, which the newest kfp and
# Prefect releases ask for; the release before it works with both.
OVERRIDES = str(ROOT / "constraints" / "overrides.txt")


def _install(session: nox.Session, *args: str) -> None:
    # Byte-compile at install time: PYTHONDONTWRITEBYTECODE is set on these
    # machines, and without .pyc files every process recompiles its imports.
    session.install("--compile-bytecode", "--override", OVERRIDES, *args)


def _pytest(session: nox.Session, *paths: str) -> None:
    # Editable checkouts are not byte-compiled at install time: let the first
    # process write .pyc files so that the step processes the tests start
    # do not all compile conveyor from source again.
    session.run(
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(ROOT),
        *paths,
        *session.posargs,
        env={"PYTHONDONTWRITEBYTECODE": ""},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and one format over the whole tree."""
    _install(session, "ruff==0.17.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over core: strict on the IR, the stores, stacks and the adapter API."""
    _install(session, "mypy==2.4.1", "./core[mysql,postgres,s3]")
    session.run("mypy", "--config-file", str(ROOT / "pyproject.toml"), env={"MYPYPATH": str(ROOT / "core" / "src")})


@nox.session(python=PYTHON)
def quickstart(session: nox.Session) -> None:
    """The README's first command: a plain (non-editable) install runs the quickstart."""
    _install(session, "./core")
    tmp = session.create_tmp()
    session.chdir(tmp)
    session.run("python", str(ROOT / "examples" / "quickstart" / "run.py"), env={"CONVEYOR_REPOSITORY": tmp})
    session.run("python", str(ROOT / "examples" / "quickstart" / "run.py"), env={"CONVEYOR_REPOSITORY": tmp})
    session.run("conveyor", "pipeline", "runs", "demo", env={"CONVEYOR_REPOSITORY": tmp})


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """Core: unit tests, and the metadata store on real MariaDB and PostgreSQL, S3 on SeaweedFS."""
    _install(session, *PYTEST, "-e", "./core[mysql,postgres,s3]", "-e", "./testing[sql,s3,docker]")
    _pytest(session, "core/tests", "testing/tests")


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
        "./core[postgres,s3]",
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
        "-e",
        "./core[mysql,postgres,s3]",
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
        "./core",
        "-e",
        "./testing[docker]",
        "-e",
        "./adapters/airflow",
        "-e",
        "./integrations/docker",
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
        "./core[postgres,s3]",
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
        "./core",
        "-e",
        "./testing[docker]",
        "-e",
        "./integrations/docker",
        "-e",
        "./adapters/dagster[dagster,docker]",
    )
    _pytest(session, "adapters/dagster/tests")


@nox.session(python=PYTHON)
def data(session: nox.Session) -> None:
    """Data plugins: numpy, pandas, pyarrow and scikit-learn materializers, round trips with hypothesis."""
    _install(session, *PYTEST, "-e", "./core", "-e", "./testing", "-e", "./plugins/data[all,test]")
    _pytest(session, "plugins/data/tests")
