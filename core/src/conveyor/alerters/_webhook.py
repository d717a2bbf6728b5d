"""The ``webhook`` alerter: an HTTP POST of a JSON body, with the standard library only.

The body is ``{"text": message, ...details}``: the details of a hook's
message are ``event``, ``pipeline``, ``run``, ``run_id``, ``step``,
``status``, ``error`` and ``run_url``. Only ``http`` and ``https`` URLs are
used, redirects are not followed, and an error names the URL's host only (a
webhook URL's path is often its secret).
"""

from __future__ import annotations

import builtins
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from conveyor.alerters._base import BaseAlerter
from conveyor.exceptions import AlerterError
from conveyor.secrets import SecretReference
from conveyor.stack import ComponentType, Flavor

USER_AGENT = "conveyor-alerter"


def url_problem(url: str) -> str | None:
    """What makes a URL unusable for a webhook, or None (http or https, a host, no password in it)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if parts.password is not None:
        return "carries a password; give the whole URL as a secret reference instead"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "contains spaces or control characters"
    return None


def shown_host(url: str) -> str:
    """``scheme://host[:port]`` of a URL: safe to show, unlike its path or query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookAlerterConfig(BaseModel):
    """Config of the ``webhook`` alerter."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """Where to POST: an http(s) URL, or a secret reference to one (Slack, Discord and Teams
    incoming-webhook URLs are credentials themselves)."""
    token: SecretReference | None = None
    """Sent as ``Authorization: Bearer <token>``, as a secret reference."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for the server."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        from conveyor.secrets import SECRETS_RESOLVED, is_reference

        resolved = bool(info.context and info.context.get(SECRETS_RESOLVED))
        if not resolved and is_reference(value):
            return value.strip()
        problem = url_problem(value)
        if problem is not None:
            # A resolved reference's value is a credential, and so is a URL with a password: neither is shown.
            shown = "the URL its secret holds" if resolved else "the URL" if "password" in problem else repr(value[:80])
            raise PydanticCustomError("webhook_url", "{shown} {problem}", {"shown": shown, "problem": problem})
        return value


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could send the message (and its token) somewhere else: answer it as an error.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookAlerter(BaseAlerter):
    """POSTs each message as JSON to a URL."""

    config: WebhookAlerterConfig

    def _post(self, message: str, details: dict[str, Any]) -> None:
        body = json.dumps({**details, "text": message}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(_NoRedirects)
        where = f"webhook alerter {self.name!r} ({shown_host(self.config.url)})"
        try:
            with opener.open(request, timeout=self.config.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            raise AlerterError(f"{where} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlerterError(f"{where} cannot be reached: {reason}") from None


class WebhookAlerterFlavor(Flavor):
    """Messages as an HTTP POST of a JSON body."""

    type = ComponentType.ALERTER
    name = "webhook"
    description = "POSTs each message as JSON to a URL (standard library only)"

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return WebhookAlerterConfig

    def implementation(self) -> builtins.type[WebhookAlerter]:
        return WebhookAlerter
