"""The ``conveyor`` root command.

This module stays light: ``conveyor --help`` imports click and nothing else
of weight. Each command group lives in its own module, imported only when
that group runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from conveyor import __version__
from conveyor.cli._lazy import LazyGroup
from conveyor.exceptions import ConveyorError, RunStoppedError

_COMMANDS = {
    "init": "conveyor.cli._repository_commands:init",
    "stack": "conveyor.cli._stack_commands:stack",
    "orchestrator": "conveyor.cli._component_commands:orchestrator",
    "artifact-store": "conveyor.cli._component_commands:artifact_store",
    "container-registry": "conveyor.cli._component_commands:container_registry",
    "image-builder": "conveyor.cli._component_commands:image_builder",
    "step-operator": "conveyor.cli._component_commands:step_operator",
    "experiment-tracker": "conveyor.cli._component_commands:experiment_tracker",
    "data-validator": "conveyor.cli._component_commands:data_validator",
    "model-deployer": "conveyor.cli._component_commands:model_deployer",
    "service": "conveyor.cli._service_commands:service",
    "alerter": "conveyor.cli._component_commands:alerter",
    "pipeline": "conveyor.cli._pipeline_commands:pipeline",
    "run": "conveyor.cli._run_commands:run",
    "artifact": "conveyor.cli._artifact_commands:artifact",
    "model": "conveyor.cli._model_commands:model",
    "gc": "conveyor.cli._artifact_commands:gc",
    "secret": "conveyor.cli._secret_commands:secret",
    "server": "conveyor.cli._server_commands:server",
    "ui": "conveyor.cli._ui_command:ui",
    "login": "conveyor.cli._server_commands:login",
    "logout": "conveyor.cli._server_commands:logout",
    "profile": "conveyor.cli._server_commands:profile",
    "user": "conveyor.cli._server_commands:user",
    "service-account": "conveyor.cli._server_commands:service_account",
}

_HELP = {
    "init": "Create a conveyor repository (.conveyor/) in a folder.",
    "stack": "Register, inspect and switch stacks.",
    "orchestrator": "Manage orchestrators (where and when steps run).",
    "artifact-store": "Manage artifact stores (where artifact bytes live).",
    "container-registry": "Manage container registries (where images are pushed).",
    "image-builder": "Manage image builders (how step images are built).",
    "step-operator": "Manage step operators (run single steps elsewhere).",
    "experiment-tracker": "Manage experiment trackers (parameters, metrics, models of steps).",
    "data-validator": "Manage data validators (check data against schemas in steps).",
    "model-deployer": "Manage model deployers (serve models as services).",
    "service": "List, inspect, stop, start and delete model services.",
    "alerter": "Manage alerters (messages and questions to people).",
    "pipeline": "Run, export, deploy and list pipelines.",
    "run": "Inspect, compare, tag and delete pipeline runs.",
    "artifact": "List, inspect, show and delete artifacts.",
    "model": "Inspect models and their versions; move aliases.",
    "gc": "Remove the files of artifacts no kept run uses.",
    "secret": "Manage encrypted secrets (referred to as {{name.key}}).",
    "server": "Run a conveyor server (the team store).",
    "ui": "Open the dashboard over the local store (runs, DAGs, logs, artifacts).",
    "login": "Log in to a conveyor server (makes it the active profile).",
    "logout": "End the session of the active profile.",
    "profile": "List, switch and delete profiles (named connections).",
    "user": "Manage a server's users (admins).",
    "service-account": "Manage a server's service accounts and API keys (admins).",
}


class CommandFailed(click.ClickException):
    """A conveyor error, shown as one line on stderr."""

    def __init__(self, message: str, exit_code: int = 1, prefix: str = "conveyor: error: ") -> None:
        # One line even when a message quotes multi-line text (a step's exception, a server's reply).
        super().__init__(" ".join(line.strip() for line in message.splitlines() if line.strip()))
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class
        self.prefix = prefix

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.prefix}{self.format_message()}", file=file or sys.stderr)


class RootGroup(LazyGroup):
    """The root group: turns conveyor errors and Ctrl-C into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunStoppedError as exc:
            raise CommandFailed(str(exc), 130) from None
        except ConveyorError as exc:
            raise CommandFailed(str(exc)) from None
        except KeyboardInterrupt:
            raise CommandFailed("interrupted", 130, prefix="conveyor: ") from None


@click.group(
    cls=RootGroup,
    lazy_commands=_COMMANDS,
    lazy_help=_HELP,
    optional=frozenset({"secret"}),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", "-V", prog_name="conveyor", message="%(prog)s %(version)s")
def cli() -> None:
    """conveyor: write an ML pipeline once, run it locally, on Airflow, Kubeflow or Prefect.

    The repository is the nearest folder above the working one that holds
    .conveyor/ (or CONVEYOR_REPOSITORY). `conveyor init` creates it, and so
    does running a pipeline; other commands never do.
    """


def main(args: list[str] | None = None) -> None:
    """Run the ``conveyor`` command line (the console script)."""
    cli.main(args=args, prog_name="conveyor")
