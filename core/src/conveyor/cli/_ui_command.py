"""``conveyor ui``: the dashboard over the repository's own store, on 127.0.0.1, without login."""

from __future__ import annotations

import os
import sys

import click

from conveyor.exceptions import ConfigError

DEFAULT_PORT = 8238
"""Where ``conveyor ui`` listens unless told (the server's default is 8237)."""


def _has_browser() -> bool:
    """Whether a graphical browser can open here (not on a headless machine or over plain SSH)."""
    if sys.platform not in ("darwin", "win32") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


@click.command()
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option("--no-browser", is_flag=True, help="Only print the URL; do not open a browser.")
def ui(port: int, no_browser: bool) -> None:
    """Show runs, their DAGs and logs, artifacts, pipelines and stacks in a browser.

    Serves the repository's own store on 127.0.0.1 (nothing else can reach
    it, so there is no login) until Ctrl-C. A team server shows the same
    pages at its own URL.
    """
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError(
            "the dashboard needs FastAPI, Jinja2 and uvicorn, which are not installed",
            'install them: pip install "./core[server]"',
        ) from None
    from conveyor._repository import Repository, settle_dead_runs
    from conveyor.server.dashboard import DashboardSource, create_ui_app
    from conveyor.stores import is_server_url, store_target
    from conveyor.stores.sql import SqlStore

    # Which store first: a server profile is refused before a repository is created here.
    found = Repository.find()
    target = store_target(found.dir if found is not None and found.dir.is_dir() else None)
    if is_server_url(target.url):
        raise ConfigError(
            f"the active profile is the server {target.url}, which serves the dashboard itself",
            f"open {target.url.rstrip('/')}/ in a browser, or switch to the local store: conveyor profile use local",
        )
    repo = Repository.current()
    store = repo.store()
    if not isinstance(store, SqlStore):
        raise ConfigError(f"the dashboard cannot read the store {store.display_url}", "use a SQL store")
    settle_dead_runs(store)
    app = create_ui_app(DashboardSource(store=store, secrets=lambda: store.secret_store(folder=repo.dir)))

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)
    server = uvicorn.Server(config)

    async def announce() -> None:
        # The port is known once the socket is bound (``--port 0`` picks a free one).
        import asyncio

        while not server.started:
            await asyncio.sleep(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        url = f"http://127.0.0.1:{bound}/"
        click.echo(f"conveyor: dashboard of {store.display_url} at {url} (Ctrl-C stops it)", err=True)
        sys.stderr.flush()
        if not no_browser and _has_browser():
            import webbrowser

            webbrowser.open(url)

    async def main() -> None:
        import asyncio

        task = asyncio.ensure_future(announce())
        try:
            await server.serve()
        finally:
            task.cancel()

    import asyncio

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
