"""Alerters: a stack component that tells people what happened and asks them questions.

``from conveyor.alerters import alert_on_failure`` gives a ready-made hook;
``get_step_context().alerter`` gives the stack's alerter inside a step. The
``webhook`` flavor ships with conveyor; ``slack`` and ``apprise`` come with
``conveyor-alerters``. A flavor subclasses :class:`BaseAlerter`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BaseAlerter": "conveyor.alerters._base",
    "WebhookAlerter": "conveyor.alerters._webhook",
    "WebhookAlerterConfig": "conveyor.alerters._webhook",
    "WebhookAlerterFlavor": "conveyor.alerters._webhook",
    "alert_on_failure": "conveyor.alerters._hooks",
    "alert_on_success": "conveyor.alerters._hooks",
}

__all__ = [
    "BaseAlerter",
    "WebhookAlerter",
    "WebhookAlerterConfig",
    "WebhookAlerterFlavor",
    "alert_on_failure",
    "alert_on_success",
]

if TYPE_CHECKING:
    from conveyor.alerters._base import BaseAlerter
    from conveyor.alerters._hooks import alert_on_failure, alert_on_success
    from conveyor.alerters._webhook import WebhookAlerter, WebhookAlerterConfig, WebhookAlerterFlavor


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.alerters' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
