"""``conveyor init``."""

from __future__ import annotations

import os

import click


@click.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option(
    "--force",
    is_flag=True,
    help="Start a new metadata store when the repository's SQLite file is damaged (the old file is kept beside it).",
)
def init(path: str | None, force: bool) -> None:
    """Create a conveyor repository (.conveyor/) in PATH and its default stack.

    PATH defaults to CONVEYOR_REPOSITORY, else the working folder. Running it
    again in an existing repository changes nothing.
    """
    from conveyor._repository import Repository
    from conveyor.constants import ENV_REPOSITORY, REPOSITORY_DIR

    folder = path or os.environ.get(ENV_REPOSITORY) or os.getcwd()
    existed = os.path.isdir(os.path.join(folder, REPOSITORY_DIR))
    repo = Repository.init(folder)
    if force:
        moved = repo.set_aside_damaged_store()
        if moved is not None:
            click.echo(f"Moved the damaged metadata store to {moved}")
    store = repo.store()
    if existed:
        click.echo(f"A conveyor repository already exists in {repo.dir}")
    else:
        click.echo(f"Created a conveyor repository in {repo.dir}")
    click.echo(f"Metadata store: {store.display_url}")
    click.echo(f"Active stack: {repo.active_stack_name}")
