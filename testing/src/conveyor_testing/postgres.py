"""A throwaway PostgreSQL server on 127.0.0.1, for the ``postgres_*`` fixtures of :mod:`conveyor_testing.sql_servers`."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
from pathlib import Path

from conveyor_testing._sql import SqlServer
from conveyor_testing.processes import (
    HOST,
    START_TIMEOUT,
    ServerStartError,
    free_port,
    make_tmpdir,
    missing,
    remove_tmpdir,
    run_child,
    spawn_server,
    start_with_retries,
    wait_until,
)

__all__ = ["start_postgres"]


def _postgres_bindirs() -> list[str]:
    # Debian keeps the server binaries off PATH, one directory per major version.
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    return sorted(
        dirs,
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
        reverse=True,
    )


def start_postgres() -> SqlServer:
    """Start a throwaway PostgreSQL on 127.0.0.1 with a user and an empty database."""
    postgres = initdb = None
    for d in _postgres_bindirs():
        if os.access(os.path.join(d, "postgres"), os.X_OK) and os.access(os.path.join(d, "initdb"), os.X_OK):
            postgres, initdb = os.path.join(d, "postgres"), os.path.join(d, "initdb")
            break
    else:
        postgres, initdb = shutil.which("postgres"), shutil.which("initdb")
    if postgres is None or initdb is None:
        missing("PostgreSQL server (postgres, initdb)")
    run_user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; Debian's package creates this user.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("system user 'postgres'")
        run_user = "postgres"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("Python package psycopg")
    return start_with_retries(lambda: _start_postgres(postgres, initdb, run_user), "PostgreSQL")


def _start_postgres(postgres: str, initdb: str, run_user: str | None) -> SqlServer:
    import psycopg

    tmp = make_tmpdir("postgres")
    datadir, log_path = tmp / "data", tmp / "server.log"
    user, password, database = "conveyor", secrets.token_hex(12), "conveyor"
    pwfile = tmp / "pwfile"
    pwfile.write_text(password + "\n")
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    if run_user is not None:
        pw = pwd.getpwnam(run_user)
        env["HOME"] = str(tmp)
        # The server user must own its data directory and reach the temp dir.
        for p in (tmp, pwfile):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    try:
        init = run_child(
            [
                initdb,
                "-D",
                str(datadir),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=tmp,
            env=env,
            user=run_user,
            timeout=START_TIMEOUT,
        )
        if init.returncode != 0:
            tail = "\n".join(init.stdout.decode(errors="replace").splitlines()[-15:])
            raise ServerStartError(f"initdb failed:\n{tail}")
        pwfile.unlink()

        port = free_port()
        proc = spawn_server(
            [
                postgres,
                "-D",
                str(datadir),
                "-h",
                HOST,
                "-p",
                str(port),
                "-k",
                str(tmp),
                # Test data is throwaway: trade durability for speed.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log_path=log_path,
            cwd=tmp,
            env=env,
            user=run_user,
            # SIGTERM is a "smart" shutdown that waits for every client to
            # leave; SIGINT is the fast one, which is what a dead pytest wants.
            death_signal=signal.SIGINT,
        )
    except BaseException:
        remove_tmpdir(tmp)
        raise

    server = SqlServer(
        dialect="postgresql+psycopg",
        port=port,
        user=user,
        password=password,
        database=database,
        proc=proc,
        tmpdir=tmp,
        log_path=log_path,
        stop_signal=signal.SIGINT,
    )

    def probe() -> None:
        psycopg.connect(
            host=HOST,
            port=port,
            user=user,
            password=password,
            dbname="postgres",
            connect_timeout=1,
        ).close()

    try:
        server.startup_seconds = wait_until(probe, proc=proc, what="postgres", log_path=log_path)
        server.execute_admin(f'CREATE DATABASE "{database}"')
    except BaseException:
        server.stop()
        raise
    return server
