"""``conveyor server``, ``login``, ``logout``, ``profile``, ``user`` and ``service-account``: the team server."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from conveyor.cli._output import emit_json, json_option, table
from conveyor.exceptions import ConfigError, ConveyorError


def _read_password(password_stdin: bool, *, confirm: bool = False, what: str = "Password") -> str:
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = click.prompt(what, hide_input=True, confirmation_prompt=confirm, err=True)
    if not value:
        raise ConfigError("the password is empty")
    return value


def _server() -> tuple[Any, str]:
    """A connection to the server the active profile (or ``CONVEYOR_SERVER``) names, and its URL."""
    from conveyor._repository import Repository
    from conveyor.stores import is_server_url, store_target
    from conveyor.stores.rest import ServerConnection

    repo = Repository.find()
    target = store_target(repo.dir if repo is not None else None)
    if not is_server_url(target.url):
        raise ConfigError(
            "this needs a conveyor server, and the active profile is the repository's own store",
            "log in to one first: conveyor login URL --username NAME",
        )
    return ServerConnection(target.url, target.token), target.url


# -- conveyor server ---------------------------------------------------------------------------
@click.group()
def server() -> None:
    """Run a conveyor server: one team store behind a REST API (pip install "./core[server]")."""


@server.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8237, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--store-url",
    metavar="URL",
    envvar="CONVEYOR_SERVER_STORE_URL",
    help="The SQL database (default: a SQLite file in the server's folder; or CONVEYOR_SERVER_STORE_URL, "
    "which keeps a password out of the process list). Only the server holds it.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The server's folder: secrets key, default database and artifact folder "
    "(default: ~/.local/share/conveyor/server).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--session-hours", default=24.0, show_default=True, type=click.FloatRange(0.01), help="Login lifetime.")
@click.option(
    "--run-token-leeway",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a run's step token keeps working after the run settled.",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
def start(
    host: str,
    port: int,
    store_url: str | None,
    data_dir: Path | None,
    workers: int,
    session_hours: float,
    run_token_leeway: float,
    access_log: bool,
) -> None:
    """Start the server (migrations run once; the first start creates the admin).

    The first admin's password comes from CONVEYOR_ADMIN_PASSWORD or a prompt,
    and is never printed or logged.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the server needs FastAPI and uvicorn, which are not installed",
            'install them: pip install "./core[server]"',
        ) from None
    from conveyor.server import AuthSettings, ServerSettings, default_data_dir, prepare, serve

    folder = (data_dir or default_data_dir()).expanduser().resolve()
    settings = ServerSettings(
        store_url=store_url or f"sqlite:///{folder / 'conveyor.db'}",
        data_dir=folder,
        auth=AuthSettings(session_hours=session_hours, run_token_leeway=run_token_leeway),
    )

    def ask() -> str:
        if not sys.stdin.isatty():
            raise ConfigError(
                "the first start creates the admin, and needs a password",
                "set CONVEYOR_ADMIN_PASSWORD, or start it in a terminal to be asked",
            )
        return _read_password(False, confirm=True, what="Password for the new admin")

    created = prepare(settings, ask)
    if created:
        click.echo(f"conveyor: created the admin {created!r}", err=True)
    shown = settings.store_url.split("@")[-1] if "@" in settings.store_url else settings.store_url
    click.echo(f"conveyor: serving {shown} on http://{host}:{port} ({workers} worker(s))", err=True)
    click.echo(f"conveyor: dashboard at http://{host}:{port}/", err=True)
    serve(settings, host=host, port=port, workers=workers, access_log=access_log)


# -- login, logout, profiles ----------------------------------------------------------------
def _profile_name(url: str) -> str:
    parts = urlsplit(url)
    return re.sub(r"[^A-Za-z0-9_.-]", "-", parts.netloc) or "server"


@click.command()
@click.argument("url")
@click.option("--username", "-u", required=True, help="Your user name on the server.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of asking.")
@click.option("--profile", "profile_name", metavar="NAME", help="The profile to save it as (default: host-port).")
def login(url: str, username: str, password_stdin: bool, profile_name: str | None) -> None:
    """Log in to a conveyor server and make it the active profile."""
    from conveyor.stores import Profile, Profiles, is_server_url
    from conveyor.stores.rest import ServerConnection

    url = url.rstrip("/")
    if not is_server_url(url):
        raise ConfigError(f"{url!r} is not a server URL", "give one like http://127.0.0.1:8237")
    password = _read_password(password_stdin)
    answer = ServerConnection(url).request("POST", "/api/login", {"username": username, "password": password})
    name = profile_name or _profile_name(url)
    Profiles().save(Profile(name, url, answer["token"], username, answer.get("expires")))
    click.echo(f"conveyor: logged in to {url} as {username}; profile {name!r} is active", err=True)


@click.command()
def logout() -> None:
    """End the session of the active profile and go back to the repository's own store."""
    from conveyor.stores import LOCAL_PROFILE, Profile, Profiles

    profiles = Profiles()
    profile = profiles.active()
    if profile.url is None:
        click.echo("conveyor: the active profile is the repository's own store: nothing to log out of", err=True)
        return
    if profile.token:
        from conveyor.stores.rest import ServerConnection

        try:
            ServerConnection(profile.url, profile.token).request("POST", "/api/logout")
        except ConveyorError:
            pass  # expired or unreachable: forgetting the token here is what matters
    profiles.save(Profile(profile.name, profile.url, None, profile.username, None), activate=False)
    profiles.use(LOCAL_PROFILE)
    click.echo(f"conveyor: logged out of {profile.url}; profile {LOCAL_PROFILE!r} is active", err=True)


@click.group()
def profile() -> None:
    """Named connections: the repository's own store, or a conveyor server with your login."""


@profile.command("list")
@json_option
def list_profiles(as_json: bool) -> None:
    """Every profile; the active one is marked."""
    from conveyor.stores import Profiles

    profiles = Profiles()
    active = profiles.active_name
    rows = profiles.list()
    if as_json:
        emit_json(
            [
                {
                    "name": p.name,
                    "active": p.name == active,
                    "url": p.url,
                    "username": p.username,
                    "expires": p.expires,
                    "logged_in": p.url is None or bool(p.token),
                }
                for p in rows
            ]
        )
        return
    table(
        ["", "name", "store", "user", "session ends"],
        [
            ["*" if p.name == active else "", p.name, p.url or "the repository's own", p.username or "", p.expires]
            for p in rows
        ],
    )


@profile.command()
@click.argument("name")
def use(name: str) -> None:
    """Make a profile the active one."""
    from conveyor.stores import Profiles

    chosen = Profiles().use(name)
    click.echo(f"conveyor: profile {name!r} is active ({chosen.describe()})", err=True)


@profile.command()
@click.argument("name")
def delete(name: str) -> None:
    """Forget a profile and its credential."""
    from conveyor.stores import Profiles

    Profiles().delete(name)
    click.echo(f"conveyor: deleted profile {name!r}", err=True)


# -- users and service accounts ---------------------------------------------------------------
@click.group()
def user() -> None:
    """Manage the server's users (admins)."""


@user.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), required=True, help="What the user may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of asking.")
def create_user(name: str, role: str, password_stdin: bool) -> None:
    """Add a user who logs in with a password."""
    conn, url = _server()
    password = _read_password(password_stdin, confirm=not password_stdin, what=f"Password for {name}")
    conn.request("POST", "/api/users", {"name": name, "role": role, "password": password})
    click.echo(f"conveyor: created user {name!r} ({role}) on {url}", err=True)


@user.command("list")
@json_option
def list_users(as_json: bool) -> None:
    """Users and their roles."""
    conn, _ = _server()
    users = conn.request("GET", "/api/users")
    if as_json:
        emit_json(users)
        return
    table(["name", "role", "created"], [[u["name"], u["role"], u["created"][:19]] for u in users])


@user.command("delete")
@click.argument("name")
def delete_user(name: str) -> None:
    """Delete a user and end their sessions."""
    from conveyor.stores.rest._http import segment

    conn, url = _server()
    conn.request("DELETE", f"/api/users/{segment(name)}")
    click.echo(f"conveyor: deleted user {name!r} from {url}", err=True)


@click.group("service-account")
def service_account() -> None:
    """Manage service accounts: API keys for CI and engine workers (admins)."""


@service_account.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["runner", "viewer", "editor", "admin"]),
    required=True,
    help="runner: engine workers (join runs, get their run's token); viewer, editor, admin as for users.",
)
def create_service_account(name: str, role: str) -> None:
    """Add a service account and print its API key (shown only this once)."""
    conn, url = _server()
    answer = conn.request("POST", "/api/service-accounts", {"name": name, "role": role})
    click.echo(f"conveyor: created service account {name!r} ({role}) on {url}; its API key (shown once):", err=True)
    click.echo(answer["api_key"])


@service_account.command("list")
@json_option
def list_service_accounts(as_json: bool) -> None:
    """Service accounts and their roles (never their keys)."""
    conn, _ = _server()
    accounts = conn.request("GET", "/api/service-accounts")
    if as_json:
        emit_json(accounts)
        return
    table(["name", "role", "created"], [[a["name"], a["role"], a["created"][:19]] for a in accounts])


@service_account.command("delete")
@click.argument("name")
def delete_service_account(name: str) -> None:
    """Delete a service account and revoke its keys."""
    from conveyor.stores.rest._http import segment

    conn, url = _server()
    conn.request("DELETE", f"/api/service-accounts/{segment(name)}")
    click.echo(f"conveyor: deleted service account {name!r} from {url}", err=True)
