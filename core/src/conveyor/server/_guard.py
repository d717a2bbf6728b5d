"""What every request passes before an endpoint sees it: size, text and API version checks.

Databases refuse some text that JSON allows (PostgreSQL: NUL characters;
every driver: lone surrogates) and some numbers (NaN, infinities). Such a
request is a 400 here, so no input ever reaches the database as an error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.stores.rest._http import API_HEADER, VERSION_HEADER

MAX_BODY = 64 * 1024 * 1024
"""The largest request body accepted (deployments of very large pipelines fit)."""


class BadText(ValueError):
    """A string or number no database would take."""


def _no_constants(name: str) -> Any:
    raise BadText(f"{name} is not a number this server stores")


def check_value(value: Any, depth: int = 0) -> None:
    """Refuse NUL characters, lone surrogates and (as :func:`json.loads` hook) NaN and infinities.

    Raises:
        BadText: naming the problem.
    """
    if depth > 200:
        raise BadText("the JSON is nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise BadText("text may not hold NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadText("text must be valid Unicode (a lone surrogate was sent)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_value(key, depth + 1)
            check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_value(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadText("numbers must be finite")


def _problem(status: int, error: str, hint: str | None = None, kind: str = "ConfigError") -> JSONResponse:
    return JSONResponse({"error": error, "hint": hint, "type": kind}, status_code=status)


class RequestGuard:
    """ASGI middleware: API version check, body size limit, text that every database stores."""

    def __init__(self, app: ASGIApp, *, api_version: int, version: str) -> None:
        self.app = app
        self.api_version = api_version
        self.version = version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._check_head(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _problem(413, f"the request body is larger than {MAX_BODY // 2**20} MiB")(scope, receive, send)
                return
        if body:
            try:
                check_value(json.loads(body, parse_constant=_no_constants))
            except BadText as exc:
                await _problem(400, str(exc))(scope, receive, send)
                return
            except (ValueError, RecursionError):
                pass  # not JSON (or too deep to parse): the endpoint's validation says so in one line

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        api = str(self.api_version).encode()

        async def tag(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((API_HEADER.lower().encode(), api))
                headers.append((VERSION_HEADER.lower().encode(), self.version.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, replay, tag)

    def _check_head(self, scope: Scope) -> JSONResponse | None:
        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query.lower():
            return _problem(400, "the URL may not hold NUL characters")
        try:
            path.encode("utf-8")
            query.decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return _problem(400, "the URL must be valid UTF-8")
        headers = dict(scope.get("headers") or [])
        sent = headers.get(API_HEADER.lower().encode())
        if sent is None or not path.startswith("/api/"):
            return None
        client_version = headers.get(VERSION_HEADER.lower().encode(), b"?").decode("latin-1")[:40]
        try:
            theirs = int(sent)
        except ValueError:
            return _problem(400, f"{API_HEADER} must be a number", None, "ServerVersionError")
        if theirs == self.api_version:
            return None
        if theirs > self.api_version:
            message = (
                f"this conveyor ({client_version}, API {theirs}) is newer than the server ({self.version}, "
                f"API {self.api_version})"
            )
            hint = f"upgrade the server, or install conveyor=={self.version} here"
        else:
            message = (
                f"this conveyor ({client_version}, API {theirs}) is older than the server ({self.version}, "
                f"API {self.api_version})"
            )
            hint = f"install conveyor {self.version} here, as the server runs (from a clone of it: pip install ./core)"
        return _problem(400, message, hint, "ServerVersionError")
