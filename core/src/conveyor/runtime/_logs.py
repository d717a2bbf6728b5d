"""Capturing what a step prints and logs, per step, also when steps share a process.

Steps of the local orchestrator run in threads of one process, so
``sys.stdout``/``sys.stderr`` and the root logger get one routing layer that
copies each write to the log of the step running in the writing thread (or
in a thread that thread started), and still passes it on to the terminal.

A step process (``run-step``) runs one step, so it captures at the file
descriptor level instead: file descriptors 1 and 2 become pipes, and
whatever reaches them (``print``, ``os.write``, child processes, C
libraries) goes to the step's log and on to the real output. Secret values
resolved in this process are replaced by ``***`` everywhere, and in every
log record whatever handler it reaches (:mod:`conveyor.secrets._redact`).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from conveyor.secrets._redact import redact

_local = threading.local()
_install_lock = threading.Lock()
_fd_mode = False


@contextmanager
def capture_file_descriptors() -> Iterator[None]:
    """Meanwhile, capture steps of this process at the file descriptor level (a process that runs one step)."""
    global _fd_mode
    previous, _fd_mode = _fd_mode, True
    try:
        yield
    finally:
        _fd_mode = previous


def _current_buffer() -> Any:
    buf = getattr(_local, "buffer", None)
    if buf is None:
        # A thread the step started writes to the step's log too.
        buf = getattr(threading.current_thread(), "_conveyor_log", None)
    return buf


class _MaskingBuffer(io.StringIO):
    # Whatever reaches a step's log, tracebacks included, goes through here.
    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix
        self.writes = 0
        self.lock = threading.Lock()
        #: Shipped to the store while the step runs, from the step's first write on.
        self.live: LiveLog | None = None

    def write(self, text: str) -> int:
        with self.lock:
            super().write(redact(text))
            self.writes += 1
            first = self.writes == 1
        if first and self.live is not None:
            self.live.follow()
        return len(text)

    def snapshot(self) -> tuple[int, str]:
        with self.lock:
            return self.writes, self.getvalue()


LIVE_INTERVAL = 1.0
"""Seconds between two writes of a running step's log to the artifact store."""


class LiveLog:
    """Ships a running step's log to the artifact store as it grows, so a killed step's output is kept.

    Every :data:`LIVE_INTERVAL` seconds, if the step wrote something, the whole
    log so far replaces the stored one (a rename on a filesystem; one object
    write in an object store). One thread of the process (:class:`_LogPump`)
    ships every running step's log, and only from a step's first write on:
    a step that writes nothing costs no thread and no store write.
    """

    def __init__(self, buf: _MaskingBuffer, store: Any, uri: str) -> None:
        self.buf = buf
        self.store = store
        self.uri = uri
        self.shipped = 0
        self.closed = False
        # Held while shipping: the pump's write never lands after the final one of close().
        self._lock = threading.Lock()

    def start(self) -> LiveLog:
        """Ship the log from the buffer's first write on (at once if it holds something already)."""
        self.buf.live = self
        if self.buf.snapshot()[0]:
            self.follow()
        return self

    def follow(self) -> None:
        """Have the process's log pump ship this log until it is closed."""
        _pump.add(self)

    def ship(self) -> None:
        """Write the log now if it changed since the last write (errors are ignored: best effort)."""
        with self._lock:
            if not self.closed:
                self._ship()

    def _ship(self) -> None:
        writes, text = self.buf.snapshot()
        if writes == self.shipped or not text:
            return
        try:
            write_log(self.store, self.uri, text)
            self.shipped = writes
        except Exception:  # noqa: BLE001 - logs are best effort; the step's status is what counts
            pass

    def close(self) -> None:
        """Stop shipping and write the log a last time."""
        self.buf.live = None
        _pump.discard(self)
        with self._lock:
            self.closed = True
            self._ship()


class _LogPump:
    """The one thread of a process that ships its running steps' logs; it ends when no log is left to ship."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[int, LiveLog] = {}
        self._running = False

    def add(self, log: LiveLog) -> None:
        with self._lock:
            self._logs[id(log)] = log
            if self._running:
                return
            self._running = True
            thread = threading.Thread(target=self._loop, name="conveyor-live-log", daemon=True)
        thread._conveyor_log = None  # type: ignore[attr-defined]
        _thread_start(thread)

    def discard(self, log: LiveLog) -> None:
        with self._lock:
            self._logs.pop(id(log), None)

    def _loop(self) -> None:
        while True:
            time.sleep(LIVE_INTERVAL)
            with self._lock:
                for key in [k for k, log in self._logs.items() if log.closed]:
                    del self._logs[key]  # followed as it was being closed
                logs = list(self._logs.values())
                if not logs:
                    self._running = False  # under the lock: the next add() starts a new thread
                    return
            for log in logs:
                log.ship()

    def _after_fork(self) -> None:
        # A forked child has none of the parent's threads, and none of its steps.
        self._lock = threading.Lock()
        self._logs = {}
        self._running = False


_pump = _LogPump()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pump._after_fork)


def write_log(store: Any, uri: str, text: str) -> None:
    """Replace a step's log file in the artifact store with ``text`` (whole, never half written on a filesystem)."""
    data = text.encode("utf-8", "replace")
    local = store.local_path(uri)
    if local is None:
        with store.open(uri, "wb") as f:
            f.write(data)
        return
    folder = os.path.dirname(local)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-log-{os.getpid()}-{threading.get_ident()}")
    with open(store.check_inside(tmp), "wb") as f:
        f.write(data)
    os.replace(tmp, store.check_inside(local))


class _RoutingStream(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self._target = target
        # Steps running side by side in this process reach the terminal a whole line at a time:
        # per step, the part of a line written so far, and whether a flush already showed some of it.
        self._lines: dict[int, tuple[str, bool]] = {}
        self._lines_lock = threading.Lock()

    def write(self, text: str) -> int:
        buf = _current_buffer()
        if buf is not None and not _fd_mode:
            buf.write(text)
            if buf.prefix:
                # The terminal is a log too: engines keep a task's stdout. Steps running side by
                # side are told apart by their id at the start of each line.
                self._show_lines(buf, text)
                return len(text)
        self._target.write(redact(text))
        return len(text)

    def _show_lines(self, buf: Any, text: str) -> None:
        with self._lines_lock:
            pending, shown = self._lines.get(id(buf), ("", False))
            pending += text
            if "\n" not in pending:
                self._lines[id(buf)] = (pending, shown)
                return
            done, _, rest = pending.rpartition("\n")
            self._lines[id(buf)] = (rest, False)
            out = []
            for i, line in enumerate(done.split("\n")):
                out.append(("" if i == 0 and shown else buf.prefix) + redact(line) + "\n")
            self._target.write("".join(out))

    def _show_partial(self, buf: Any, end: str = "") -> None:
        with self._lines_lock:
            pending, shown = self._lines.pop(id(buf), ("", False))
            if pending or (shown and end):
                self._target.write(("" if shown else buf.prefix) + redact(pending) + end)
            if not end and (pending or shown):
                self._lines[id(buf)] = ("", True)

    def end_step(self, buf: Any) -> None:
        """Show what is left of the step's last line (it ends here)."""
        self._show_partial(buf, "\n")

    def flush(self) -> None:
        buf = _current_buffer()
        if buf is not None and buf.prefix and not _fd_mode:
            self._show_partial(buf)  # what the step flushed, it wants seen
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
        buf = _current_buffer()
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
        return record  # type: ignore[no-any-return]

    make._conveyor_masking = True  # type: ignore[attr-defined]
    return make


_thread_start = threading.Thread.start


def _start_with_log(self: threading.Thread) -> None:
    self._conveyor_log = _current_buffer()  # type: ignore[attr-defined]
    _thread_start(self)


def _install() -> None:
    with _install_lock:
        if threading.Thread.start is _thread_start:
            threading.Thread.start = _start_with_log  # type: ignore[method-assign]
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "_conveyor_masking", False):
            logging.setLogRecordFactory(_masking_record_factory(factory))
        if not isinstance(sys.stdout, _RoutingStream):
            sys.stdout = _RoutingStream(sys.stdout)
        if not isinstance(sys.stderr, _RoutingStream):
            sys.stderr = _RoutingStream(sys.stderr)
        root = logging.getLogger()
        if not any(isinstance(h, _RoutingHandler) for h in root.handlers):
            handler = _RoutingHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)


class _FdCapture:
    """File descriptors 1 and 2 as pipes: what reaches them goes, masked, to the real output (and a step's log)."""

    def __init__(self, buf: io.StringIO | None, prefix: str = "") -> None:
        self.buf = buf
        self.prefix = prefix.encode()
        self.saved: dict[int, int] = {}
        self.readers: list[threading.Thread] = []

    def __enter__(self) -> _FdCapture:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd in (1, 2):
            self.saved[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            reader = threading.Thread(
                target=self._pump, args=(read_end, self.saved[fd]), name=f"conveyor-fd{fd}", daemon=True
            )
            reader._conveyor_log = None  # type: ignore[attr-defined]
            _thread_start(reader)
            self.readers.append(reader)
        return self

    def _pump(self, read_end: int, out: int) -> None:
        import select

        pending = b""
        try:
            while True:
                # Whole lines, so that a secret value is never split between two writes; a line
                # still open after a pause (a progress bar) goes out as it is.
                ready, _, _ = select.select([read_end], [], [], _PARTIAL_LINE_WAIT)
                if not ready:
                    if pending:
                        self._emit(pending, out)
                        pending = b""
                    continue
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                pending += chunk
                if b"\n" in pending or len(pending) > 1 << 16:
                    cut = pending.rfind(b"\n") + 1 or len(pending)
                    self._emit(pending[:cut], out)
                    pending = pending[cut:]
            if pending:
                self._emit(pending, out)
        finally:
            os.close(read_end)

    def _emit(self, data: bytes, out: int) -> None:
        text = redact(data.decode("utf-8", "replace"))
        if self.buf is not None:
            self.buf.write(text)
        encoded = text.encode("utf-8", "replace")
        if self.prefix:
            encoded = b"".join(self.prefix + line for line in encoded.splitlines(keepends=True))
        while encoded:
            try:
                encoded = encoded[os.write(out, encoded) :]
            except OSError:
                return  # the real output is gone (a closed terminal): the log still has it

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)  # closes the pipe's last write end held by this process
        for reader in self.readers:
            # A child process the step left running may still hold the pipe open.
            reader.join(timeout=2)
        for saved in self.saved.values():
            os.close(saved)


_PARTIAL_LINE_WAIT = 0.05


@contextmanager
def mask_file_descriptors() -> Iterator[None]:
    """Mask secret values in everything written to file descriptors 1 and 2 of this process meanwhile.

    For runs whose steps share this process (threads): raw writes and child
    processes of a step reach the terminal masked, though not the step's log.
    """
    if _fd_mode:
        yield  # each step captures its own descriptors already
        return
    with _FdCapture(None):
        yield


@contextmanager
def capture_logs(store: Any = None, uri: str | None = None, *, prefix: str = "") -> Iterator[io.StringIO]:
    """Collect the step's prints and log records into a buffer (secret values masked).

    Threads the step starts write to it too; in a process that runs one step
    (:func:`capture_file_descriptors`), so does anything written to file
    descriptors 1 and 2, child processes included. With ``store`` and ``uri``,
    the log is written there while the step runs and once more at the end.

    Args:
        prefix: put at the start of each line the step writes to the terminal (``"[train] "``).
    """
    _install()
    buf = _MaskingBuffer(prefix)
    previous = getattr(_local, "buffer", None)
    _local.buffer = buf
    live = LiveLog(buf, store, uri).start() if store is not None and uri is not None else None
    try:
        if _fd_mode:
            with _FdCapture(buf, prefix):
                yield buf
        else:
            yield buf
    finally:
        _local.buffer = previous
        if prefix and not _fd_mode:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _RoutingStream):
                    stream.end_step(buf)
        if live is not None:
            live.close()
