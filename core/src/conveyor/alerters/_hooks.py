"""Ready-made hooks that tell people through the stack's alerter."""

from __future__ import annotations

from typing import Any


def alert_on_failure(context: Any) -> None:
    """A failure hook: posts what failed (pipeline, run, step) and why to the stack's alerter.

    ``@step(on_failure=alert_on_failure)`` or ``@pipeline(on_failure=alert_on_failure)``.

    Raises:
        StackError: the stack has no alerter (the hook is recorded failed).
        AlerterError: the message could not be delivered.
    """
    context.alerter.post(context.message, details=context.details())


def alert_on_success(context: Any) -> None:
    """A success hook: posts that a step or a run completed to the stack's alerter.

    Raises:
        StackError: the stack has no alerter (the hook is recorded failed).
        AlerterError: the message could not be delivered.
    """
    context.alerter.post(context.message, details=context.details())
