"""The handle of a running SQL server, shared by :mod:`conveyor_testing.mariadb` and :mod:`conveyor_testing.postgres`."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
from pathlib import Path

from conveyor_testing.processes import HOST, remove_tmpdir, stop_server


@dataclasses.dataclass
class SqlServer:
    """A running database server started by a fixture."""

    dialect: str  # SQLAlchemy "dialect+driver"
    port: int
    user: str
    password: str
    database: str
    proc: subprocess.Popen[bytes]
    tmpdir: Path
    log_path: Path
    stop_signal: int
    startup_seconds: float = 0.0
    host: str = HOST

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL of ``database`` (default: the session database)."""
        db = database or self.database
        return f"{self.dialect}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def execute_admin(self, sql: str) -> None:
        """Run one statement outside any transaction, as the server's admin user."""
        if self.dialect.startswith("mysql"):
            import pymysql

            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                autocommit=True,
                connect_timeout=5,
            )
            try:
                with conn.cursor() as cur:
                    # Never wait long on a table a leaked connection still holds.
                    cur.execute("SET SESSION lock_wait_timeout = 10")
                    cur.execute(sql)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                conn.execute(sql)

    def create_database(self, prefix: str = "t") -> str:
        """Create a new uniquely named empty database; return its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        q = "`" if self.dialect.startswith("mysql") else '"'
        self.execute_admin(f"CREATE DATABASE {q}{name}{q}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing connections tests left open (best effort)."""
        if self.dialect.startswith("mysql"):
            sql = f"DROP DATABASE IF EXISTS `{name}`"
        else:
            sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        try:
            self.execute_admin(sql)
        except Exception:
            # The whole server goes away at session end anyway.
            pass

    def stop(self) -> None:
        """Stop the server by its PID and remove its data directory."""
        stop_server(self.proc, stop_signal=self.stop_signal)
        remove_tmpdir(self.tmpdir)
