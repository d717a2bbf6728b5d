"""A throwaway MariaDB server on 127.0.0.1, for the ``mariadb_*`` fixtures of :mod:`conveyor_testing.sql_servers`."""

from __future__ import annotations

import os
import secrets
import signal

from conveyor_testing._sql import SqlServer
from conveyor_testing.processes import (
    HOST,
    START_TIMEOUT,
    ServerStartError,
    find_binary,
    free_port,
    make_tmpdir,
    missing,
    remove_tmpdir,
    run_child,
    spawn_server,
    start_with_retries,
    wait_until,
)

__all__ = ["start_mariadb"]

_MARIADB_DIRS = ("/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/mysql/bin")


def start_mariadb() -> SqlServer:
    """Start a throwaway MariaDB on 127.0.0.1 with a user and an empty database."""
    mariadbd = find_binary("mariadbd", _MARIADB_DIRS) or find_binary("mysqld", _MARIADB_DIRS)
    install_db = find_binary("mariadb-install-db", _MARIADB_DIRS) or find_binary("mysql_install_db", _MARIADB_DIRS)
    if mariadbd is None or install_db is None:
        missing("MariaDB server (mariadbd, mariadb-install-db)")
    try:
        import pymysql  # noqa: F401
    except ImportError:
        missing("Python package pymysql")
    return start_with_retries(lambda: _start_mariadb(mariadbd, install_db), "MariaDB")


def _start_mariadb(mariadbd: str, install_db: str) -> SqlServer:
    import pymysql

    tmp = make_tmpdir("mariadb")
    datadir, log_path = tmp / "data", tmp / "server.log"
    user, password, database = "conveyor", secrets.token_hex(12), "conveyor"
    # mariadbd refuses to run as root unless told to run as root.
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    try:
        # --no-defaults first: /etc/mysql/my.cnf points at system paths.
        init = run_child(
            [
                install_db,
                "--no-defaults",
                f"--datadir={datadir}",
                *run_as,
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            timeout=START_TIMEOUT,
        )
        if init.returncode != 0:
            tail = "\n".join(init.stdout.decode(errors="replace").splitlines()[-15:])
            raise ServerStartError(f"mariadb-install-db failed:\n{tail}")

        # Runs at every server start, before clients are served, so the user
        # and database exist without a root login over the socket.
        init_sql = tmp / "init.sql"
        init_sql.write_text(
            f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION;\n"
            f"CREATE DATABASE IF NOT EXISTS `{database}`;\n"
        )
        port = free_port()
        proc = spawn_server(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={datadir}",
                *run_as,
                f"--bind-address={HOST}",
                f"--port={port}",
                f"--socket={tmp / 'mysqld.sock'}",
                f"--pid-file={tmp / 'mysqld.pid'}",
                f"--tmpdir={tmp}",
                f"--init-file={init_sql}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                # Test data is throwaway: trade durability for speed.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=64M",
                "--performance-schema=OFF",
            ],
            log_path=log_path,
            cwd=tmp,
        )
    except BaseException:
        remove_tmpdir(tmp)
        raise

    server = SqlServer(
        dialect="mysql+pymysql",
        port=port,
        user=user,
        password=password,
        database=database,
        proc=proc,
        tmpdir=tmp,
        log_path=log_path,
        stop_signal=signal.SIGTERM,
    )

    def probe() -> None:
        pymysql.connect(
            host=HOST,
            port=port,
            user=user,
            password=password,
            database=database,
            connect_timeout=1,
        ).close()

    try:
        server.startup_seconds = wait_until(probe, proc=proc, what="mariadbd", log_path=log_path)
    except BaseException:
        server.stop()
        raise
    return server
