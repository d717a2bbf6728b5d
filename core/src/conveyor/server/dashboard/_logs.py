"""A step's log as numbered lines, served a range at a time (the page renders only the lines in view).

A log is read once, its line starts indexed, and kept while its step has
ended (an ended step's log never changes); a running step's log is read
again on each request, so the page sees what the step printed last.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

LOG_BYTES_SHOWN = 64 * 1024 * 1024
"""The end of a log the page can scroll through; earlier bytes are in the whole log (the raw file)."""

LOG_LINES_SHOWN = 500_000
"""The last lines of a log the page can scroll through (a browser cannot make a scroll area much taller)."""

LINE_CHARS_SHOWN = 2000
"""Characters of one line the page shows (the whole line is in the raw file)."""

RANGE_LINES_MAX = 2000
"""Lines one range request returns at most."""

_CACHED_LOGS = 4


@dataclass(frozen=True)
class LogLines:
    """A log's text and where each of its lines starts.

    Attributes:
        data: the log's bytes (its last ``LOG_BYTES_SHOWN``, starting at a line).
        starts: the offset in ``data`` of each shown line.
        skipped: bytes of the log before the first shown line (0: the whole log is shown).
    """

    data: bytes
    starts: array[int]
    skipped: int

    @classmethod
    def parse(cls, data: bytes, truncated: bool = False) -> LogLines:
        """Index ``data``; ``truncated`` means it is the end of a longer log (its first partial line is dropped)."""
        skipped = 0
        if truncated:
            cut = data.find(b"\n") + 1
            skipped, data = cut, data[cut:]
        parts = data.split(b"\n")
        if parts[-1] == b"":
            parts.pop()  # the newline ending the last line starts no line
        # Each line starts one byte (its newline) after the end of the one before it; summed in C, not in a loop.
        starts = array("q", accumulate((len(p) + 1 for p in parts[:-1]), initial=0) if parts else ())
        if len(starts) > LOG_LINES_SHOWN:
            starts = starts[-LOG_LINES_SHOWN:]
            skipped += starts[0]
        return cls(data, starts, skipped)

    @property
    def total(self) -> int:
        """Lines shown (a last line without its newline counts: a running step may be mid-line)."""
        return len(self.starts)

    def lines(self, start: int, count: int) -> list[str]:
        """Up to ``count`` lines from line ``start`` (0-based), each cut to ``LINE_CHARS_SHOWN`` characters."""
        start = max(0, start)
        stop = min(self.total, start + max(0, count))
        out: list[str] = []
        for i in range(start, stop):
            end = self.starts[i + 1] if i + 1 < self.total else len(self.data)
            raw = self.data[self.starts[i] : end].rstrip(b"\n").rstrip(b"\r")
            text = raw[: LINE_CHARS_SHOWN * 4].decode("utf-8", "replace")
            out.append(text if len(text) <= LINE_CHARS_SHOWN else text[:LINE_CHARS_SHOWN] + "…")
        return out


class LogCache:
    """The last few ended steps' logs, indexed (re-reading a 200,000-line log on every scroll costs seconds)."""

    def __init__(self, read: Callable[[str, int], bytes]) -> None:
        """``read(uri, limit)`` returns a log's last ``limit`` bytes."""
        self._read = read
        self._kept: OrderedDict[str, LogLines] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uri: str, final: bool) -> LogLines:
        """The log at ``uri``; ``final`` means its step has ended, so it can be kept."""
        if final:
            with self._lock:
                found = self._kept.get(uri)
                if found is not None:
                    self._kept.move_to_end(uri)
                    return found
        data = self._read(uri, LOG_BYTES_SHOWN + 1)
        lines = LogLines.parse(data[-LOG_BYTES_SHOWN:], truncated=len(data) > LOG_BYTES_SHOWN)
        if final:
            with self._lock:
                self._kept[uri] = lines
                while len(self._kept) > _CACHED_LOGS:
                    self._kept.popitem(last=False)
        return lines
