"""The alerter component: messages to people, and questions they answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.exceptions import AlerterError
from conveyor.stack import StackComponent


def _masked(value: Any) -> Any:
    from conveyor.secrets import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


class BaseAlerter(StackComponent):
    """Sends messages to a chat or a service, and asks people questions.

    :meth:`post` and :meth:`ask` mask every secret value this process has
    resolved (the alerter's own credentials, a step's secrets) before
    anything leaves it, then call :meth:`_post` / :meth:`_ask`, which
    flavors implement.
    """

    def post(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        """Send a message.

        Args:
            message: the text people read.
            details: facts beside it as plain data (pipeline, run, step, error);
                flavors that carry structured data send them, others ignore them.

        Raises:
            AlerterError: the message could not be delivered.
        """
        self._post(_masked(str(message)), _masked(dict(details or {})))

    def ask(self, question: str, *, timeout: float = 3600.0) -> bool:
        """Ask a question and wait for a person's answer.

        Returns:
            True when approved; False when rejected, or when nobody answered within ``timeout`` seconds.

        Raises:
            AlerterError: this flavor cannot ask questions, or the question could not be sent.
        """
        return self._ask(_masked(str(question)), timeout)

    # -- what flavors implement ------------------------------------------------------
    def _post(self, message: str, details: dict[str, Any]) -> None:
        raise NotImplementedError

    def _ask(self, question: str, timeout: float) -> bool:
        raise AlerterError(
            f"the {self.flavor.name} alerter {self.name!r} cannot ask questions, only post messages",
            "use an alerter that can wait for an answer (slack)",
        )
