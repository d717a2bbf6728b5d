"""Capturing what a step prints and logs, per step, also when steps share a process.

Steps of the local orchestrator run in threads of one process, so
``sys.stdout``/``sys.stderr`` and the root logger get one routing layer that
copies each write to the log of the step running in the writing thread, and
still passes it on to the terminal. Secret values resolved in this process
are replaced by ``***`` in both, and in every log record whatever handler
it reaches (:mod:`conveyor.secrets._redact`).
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from conveyor.secrets._redact import redact

_local = threading.local()
_install_lock = threading.Lock()


class _MaskingBuffer(io.StringIO):
    # Whatever reaches a step's log, tracebacks included, goes through here.
    def write(self, text: str) -> int:
        super().write(redact(text))
        return len(text)


class _RoutingStream(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        buf = getattr(_local, "buffer", None)
        if buf is not None:
            buf.write(text)
        # The terminal is a log too: engines keep a task's stdout.
        self._target.write(redact(text))
        return len(text)

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


def _masking_record_factory(factory: Any) -> Any:
    # Every handler, not only the step log's (the terminal's, an engine's own
    # task log), gets records whose message and traceback are already masked.
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                text = logging.Formatter().formatException(record.exc_info)
                masked = redact(text)
                if masked != text:
                    record.exc_text = masked
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            pass
        return record

    make._conveyor_masking = True  # type: ignore[attr-defined]
    return make


def _install() -> None:
    with _install_lock:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "_conveyor_masking", False):
            logging.setLogRecordFactory(_masking_record_factory(factory))
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
    """Collect the current thread's prints and log records into a buffer (secret values masked)."""
    _install()
    buf = _MaskingBuffer()
    previous = getattr(_local, "buffer", None)
    _local.buffer = buf
    try:
        yield buf
    finally:
        _local.buffer = previous
