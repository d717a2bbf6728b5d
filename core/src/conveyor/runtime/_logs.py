"""Capturing what a step prints and logs, per step, also when steps share a process.

Steps of the local orchestrator run in threads of one process, so
``sys.stdout``/``sys.stderr`` and the root logger get one routing layer that
copies each write to the log of the step running in the writing thread, and
still passes it on to the terminal.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_local = threading.local()
_install_lock = threading.Lock()


class _RoutingStream(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        buf = getattr(_local, "buffer", None)
        if buf is not None:
            buf.write(text)
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _RoutingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buf = getattr(_local, "buffer", None)
        if buf is not None:
            try:
                buf.write(self.format(record) + "\n")
            except Exception:  # noqa: BLE001 - logging must never break a step
                self.handleError(record)


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _RoutingStream):
            sys.stdout = _RoutingStream(sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, _RoutingStream):
            sys.stderr = _RoutingStream(sys.stderr)  # type: ignore[assignment]
        root = logging.getLogger()
        if not any(isinstance(h, _RoutingHandler) for h in root.handlers):
            handler = _RoutingHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)


@contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Collect the current thread's prints and log records into a buffer."""
    _install()
    buf = io.StringIO()
    previous = getattr(_local, "buffer", None)
    _local.buffer = buf
    try:
        yield buf
    finally:
        _local.buffer = previous
