"""The ``slack`` alerter: posts with a bot token, and asks questions a person answers in Slack.

``ask`` posts the question, then reads the replies in its thread and the
channel's messages after it (``conversations.replies``,
``conversations.history``) every ``poll_interval`` seconds: the first reply
from a person that is exactly one of the ``approve`` or ``reject`` words
decides; no such reply within the timeout is a no. The bot token needs the
``chat:write`` scope, and for ``ask`` the ``channels:history`` (or
``groups:history``) scope of the channel.
"""

from __future__ import annotations

import builtins
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.alerters import BaseAlerter
from conveyor.exceptions import AlerterError, FlavorNotFoundError
from conveyor.secrets import SecretReference
from conveyor.stack import ComponentType, Flavor

INSTALL = 'pip install ./core "./integrations/alerters[slack]"'
SLACK_API = "https://slack.com/api/"
_DECORATION = " \t\r\n*_~`.!,;:"


class SlackAlerterConfig(BaseModel):
    """Config of the ``slack`` alerter."""

    model_config = ConfigDict(extra="forbid")

    token: SecretReference
    """The bot token (``xoxb-...``), as a secret reference such as ``{{slack.token}}``."""
    channel: str
    """The channel to post to: ``#name`` or its id (``C0123...``)."""
    base_url: str = SLACK_API
    """Slack's Web API; another URL only for a server that speaks it (a test double)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for each API call."""
    poll_interval: float = Field(default=5.0, gt=0)
    """Seconds between two looks for an answer while ``ask`` waits."""
    approve: list[str] = ["approve", "approved", "yes", "y", "lgtm", "ok"]
    """Replies that approve (matched whole, case-insensitive)."""
    reject: list[str] = ["reject", "rejected", "no", "n", "deny"]
    """Replies that reject."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value.strip()):
            raise ValueError("must be a channel name (#ml) or id, without spaces")
        return value.strip()


def escape(text: str) -> str:
    """Text with Slack's control characters escaped: a run name or an error can mention nobody (``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reply_verdict(text: str, approve: list[str], reject: list[str]) -> bool | None:
    """True or False when a reply is exactly an approve or a reject word; None for anything else."""
    word = str(text).strip(_DECORATION).casefold()
    if word in {w.casefold() for w in approve}:
        return True
    if word in {w.casefold() for w in reject}:
        return False
    return None


class SlackAlerter(BaseAlerter):
    """Posts to a Slack channel; asks and waits for a person's reply."""

    config: SlackAlerterConfig

    def _client(self) -> Any:
        from slack_sdk import WebClient

        return WebClient(token=self.config.token, base_url=self.config.base_url, timeout=int(self.config.timeout))

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError

        try:
            return method(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            raise AlerterError(
                f"slack alerter {self.name!r}: Slack refused {what}: {error or 'no reason given'}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - connection errors of every kind slack-sdk lets through
            raise AlerterError(f"slack alerter {self.name!r} cannot reach Slack for {what}: {exc}") from None

    def _post(self, message: str, details: dict[str, Any]) -> None:
        client = self._client()
        self._call("the message", client.chat_postMessage, channel=self.config.channel, text=escape(message))

    def _ask(self, question: str, timeout: float) -> bool:
        config = self.config
        client = self._client()
        bot = self._call("who it is", client.auth_test).get("user_id")
        text = (
            f"{escape(question)}\nReply in this thread with *{config.approve[0]}* or *{config.reject[0]}*."
            if config.approve and config.reject
            else escape(question)
        )
        posted = self._call("the question", client.chat_postMessage, channel=config.channel, text=text)
        channel, ts = posted["channel"], posted["ts"]
        deadline = time.monotonic() + timeout
        while True:
            thread = self._call("the replies", client.conversations_replies, channel=channel, ts=ts)
            after = self._call("the channel", client.conversations_history, channel=channel, oldest=ts, limit=100)
            replies = [m for m in thread.get("messages", []) if m.get("ts") != ts]
            replies += list(reversed(after.get("messages", [])))  # the channel's newest come first
            for reply in sorted(replies, key=lambda m: float(m.get("ts") or 0)):
                if reply.get("bot_id") or reply.get("user") in (None, bot):
                    continue  # its own messages, and other bots', decide nothing
                verdict = reply_verdict(reply.get("text", ""), config.approve, config.reject)
                if verdict is not None:
                    return verdict
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(config.poll_interval, left))


class SlackAlerterFlavor(Flavor):
    """Slack, through slack-sdk."""

    type = ComponentType.ALERTER
    name = "slack"
    description = "posts to a Slack channel; ask waits for an approve/reject reply (slack-sdk)"
    install = INSTALL

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return SlackAlerterConfig

    def implementation(self) -> builtins.type[SlackAlerter]:
        return SlackAlerter

    def create(self, name: str, config: Any) -> SlackAlerter:
        import importlib.util

        if importlib.util.find_spec("slack_sdk") is None:
            raise FlavorNotFoundError("the slack alerter needs slack-sdk, which is not installed", f"run: {INSTALL}")
        return super().create(name, config)
