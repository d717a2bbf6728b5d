"""The step context: what a running step can ask about itself."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from conveyor.exceptions import ConveyorError

_current: ContextVar[StepContext | None] = ContextVar("conveyor_step_context", default=None)


@dataclass(frozen=True)
class StepContext:
    """Facts about the step that is running, for code inside a step.

    Attributes:
        pipeline_name: the pipeline's name.
        run_id: id of the pipeline run.
        run_name: name of the pipeline run.
        step_id: the invocation id (``split_2``).
        step_name: the step's name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        artifact_store: the run's artifact store.
        secrets: ``{secret name: {key: value}}`` of the secrets the step asked for.
        stack: the stack the step runs on.
    """

    pipeline_name: str
    run_id: str
    run_name: str
    step_id: str
    step_name: str
    attempt: int
    artifact_store: Any = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    stack: Any = field(default=None, repr=False)

    @property
    def alerter(self) -> Any:
        """The alerter of the stack the step runs on (``post(message)``, ``ask(question)``).

        Raises:
            StackError: the stack has no alerter.
        """
        from conveyor.stack import ComponentType

        if self.stack is None:
            from conveyor.exceptions import StackError

            raise StackError(f"step {self.step_id!r} runs without a stack, so it has no alerter")
        return self.stack.component(ComponentType.ALERTER)

    def get_secret(self, name: str) -> dict[str, str]:
        """The values of a secret the step declared with ``@step(secrets=[...])``."""
        from conveyor.exceptions import SecretError

        try:
            return self.secrets[name]
        except KeyError:
            raise SecretError(
                f"step {self.step_id!r} did not ask for secret {name!r}",
                f"declare it: @step(secrets=[{name!r}])",
            ) from None


def get_step_context() -> StepContext:
    """The context of the step running in this thread.

    Raises:
        ConveyorError: called outside a running step.
    """
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("get_step_context() works only inside a running step")
    return ctx


def set_step_context(ctx: StepContext | None) -> Any:
    """Make ``ctx`` the current step context; returns a token for :func:`reset_step_context`."""
    return _current.set(ctx)


def reset_step_context(token: Any) -> None:
    """Undo :func:`set_step_context`."""
    _current.reset(token)
