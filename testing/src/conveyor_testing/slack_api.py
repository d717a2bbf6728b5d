"""A local stand-in for the Slack Web API endpoints conveyor's slack alerter calls.

It answers ``auth.test``, ``chat.postMessage``, ``conversations.replies``
and ``conversations.history`` on 127.0.0.1 the way Slack documents them
(``{"ok": ...}`` bodies, ``Authorization: Bearer`` tokens), so that
slack-sdk's ``WebClient(base_url=fake.base_url)`` talks to it unchanged.
Posted messages are recorded; a test scripts a person's answer to the next
question with :meth:`FakeSlack.answer_next`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["BOT_USER", "PERSON", "FakeSlack", "PostedMessage", "fake_slack"]

HOST = "127.0.0.1"
BOT_USER = "UBOT0001"
"""The user id the fake says the token belongs to."""
PERSON = "UPERSON01"
"""The user id of the scripted person who answers questions."""


@dataclass
class PostedMessage:
    """One message posted with ``chat.postMessage``, and the replies in its thread."""

    channel: str
    text: str
    ts: str
    thread_ts: str | None = None
    replies: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    """The fake Slack Web API.

    Args:
        token: the only bot token it accepts.
    """

    def __init__(self, token: str = "xoxb-fake-token") -> None:
        self.token = token
        self.messages: list[PostedMessage] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._answers: list[tuple[str, float, bool, str]] = []
        self._lock = threading.Lock()
        self._clock = 1_700_000_000
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params: dict[str, Any] = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(urllib.parse.parse_qsl(raw.decode()))
                method = url.path.rsplit("/", 1)[-1]
                reply = fake._answer(method, params, self.headers.get("Authorization") or "")
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True)

    @property
    def base_url(self) -> str:
        """What to give slack-sdk as ``base_url`` (ends with ``/api/``, as Slack's own)."""
        return f"http://{HOST}:{self._server.server_address[1]}/api/"

    def answer_next(self, text: str, *, after: float = 0.2, in_thread: bool = True, user: str = PERSON) -> None:
        """Make a person answer the next message posted with ``text``, ``after`` seconds later.

        Args:
            in_thread: answer in the message's thread (else in the channel, after it).
            user: who answers (:data:`BOT_USER` for the bot itself).
        """
        with self._lock:
            self._answers.append((text, after, in_thread, user))

    def start(self) -> FakeSlack:
        """Start answering; returns the fake."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the API ---------------------------------------------------------------------
    def _ts(self) -> str:
        self._clock += 1
        return f"{self._clock}.000100"

    def _answer(self, method: str, params: dict[str, Any], auth: str) -> dict[str, Any]:
        with self._lock:
            self.calls.append((method, dict(params)))
            if auth != f"Bearer {self.token}":
                return {"ok": False, "error": "invalid_auth"}
            if method == "auth.test":
                return {"ok": True, "user_id": BOT_USER, "bot_id": "BBOT0001", "team": "conveyor"}
            if method == "chat.postMessage":
                return self._post(params)
            if method == "conversations.replies":
                return self._replies(params)
            if method == "conversations.history":
                return self._history(params)
            return {"ok": False, "error": "unknown_method"}

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        channel_id = channel if channel.startswith("C") else "C0000CHAN"
        message = PostedMessage(channel=channel_id, text=str(params.get("text") or ""), ts=self._ts())
        message.thread_ts = params.get("thread_ts")
        self.messages.append(message)
        if self._answers and message.thread_ts is None:
            text, after, in_thread, user = self._answers.pop(0)
            reply = {
                "type": "message",
                "user": user,
                "text": text,
                "ts": self._ts(),
                "visible_after": time.monotonic() + after,
            }
            if in_thread:
                reply["thread_ts"] = message.ts
            message.replies.append(reply)
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "message": {"type": "message", "user": BOT_USER, "bot_id": "BBOT0001", "text": message.text},
        }

    def _visible(self, replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{k: v for k, v in r.items() if k != "visible_after"} for r in replies if r["visible_after"] <= now]

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = params.get("ts")
        for message in self.messages:
            if message.ts == ts and message.channel == params.get("channel"):
                parent = {"type": "message", "user": BOT_USER, "bot_id": "BBOT0001", "text": message.text, "ts": ts}
                thread = [r for r in self._visible(message.replies) if r.get("thread_ts") == ts]
                return {"ok": True, "messages": [parent, *thread], "has_more": False}
        return {"ok": False, "error": "thread_not_found"}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        oldest = float(params.get("oldest") or 0)
        found = []
        for message in self.messages:
            if message.channel != params.get("channel"):
                continue
            for reply in self._visible(message.replies):
                if "thread_ts" not in reply and float(reply["ts"]) > oldest:
                    found.append(reply)
        return {"ok": True, "messages": sorted(found, key=lambda r: r["ts"], reverse=True), "has_more": False}

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on 127.0.0.1 for one test."""
    with FakeSlack() as fake:
        yield fake
