"""The ``apprise`` alerter: one message to any of the services Apprise knows.

Apprise URLs (``discord://...``, ``msteams://...``, ``mailto://...``,
``json://host/path``) carry the services' credentials, so each is given as a
secret reference; an error never shows one.
"""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.alerters import BaseAlerter
from conveyor.exceptions import AlerterError, FlavorNotFoundError
from conveyor.secrets import SecretReference
from conveyor.stack import ComponentType, Flavor

INSTALL = 'pip install ./core "./integrations/alerters[apprise]"'


class AppriseAlerterConfig(BaseModel):
    """Config of the ``apprise`` alerter."""

    model_config = ConfigDict(extra="forbid")

    urls: list[SecretReference] = Field(min_length=1)
    """Apprise URLs of the services to notify, each a secret reference (``{{alerts.discord}}``)."""
    title: str = "conveyor"
    """The title of each notification, where the service shows one."""


class AppriseAlerter(BaseAlerter):
    """Notifies every service of its Apprise URLs."""

    config: AppriseAlerterConfig

    def _post(self, message: str, details: dict[str, Any]) -> None:
        import apprise

        notifier = apprise.Apprise()
        for position, url in enumerate(self.config.urls):
            if not notifier.add(url):
                raise AlerterError(
                    f"apprise alerter {self.name!r}: URL {position + 1} of {len(self.config.urls)} is not one "
                    "Apprise knows",
                    "see https://github.com/caronc/apprise/wiki for the URL of each service",
                )
        if not notifier.notify(body=message, title=self.config.title):
            raise AlerterError(f"apprise alerter {self.name!r}: a service did not take the message")


class AppriseAlerterFlavor(Flavor):
    """Apprise: Discord, Teams, Mattermost, e-mail and dozens of other services."""

    type = ComponentType.ALERTER
    name = "apprise"
    description = "notifies any service Apprise knows (Discord, Teams, Mattermost, e-mail, ...)"
    install = INSTALL

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return AppriseAlerterConfig

    def implementation(self) -> builtins.type[AppriseAlerter]:
        return AppriseAlerter

    def create(self, name: str, config: Any) -> AppriseAlerter:
        import importlib.util

        if importlib.util.find_spec("apprise") is None:
            raise FlavorNotFoundError("the apprise alerter needs apprise, which is not installed", f"run: {INSTALL}")
        return super().create(name, config)
