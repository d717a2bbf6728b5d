"""What a local run shows on the terminal while it runs: which steps run, finish, come from the cache or fail.

On a terminal the lines are coloured (rich); elsewhere (a pipe, a CI log)
they are plain. Every line starts with ``conveyor |`` so it is never
mistaken for a step's own output, which carries ``[step id]`` instead.
``CONVEYOR_QUIET=1`` keeps a run silent but for errors.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

PREFIX = "conveyor | "
"""How every progress line starts."""

_STYLES = {"completed": "green", "cached": "cyan", "failed": "bold red", "stopped": "yellow", "skipped": "dim"}


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 60 else f"{int(value // 60)} min {value % 60:.0f} s"


class Progress:
    """Reports one run's steps as they start and end.

    Args:
        pipeline: the pipeline's name.
        run: the run's name.
        stack: the stack's name.
        steps: how many steps the pipeline has.
    """

    def __init__(self, pipeline: str, run: str, stack: str, steps: int) -> None:
        self.quiet = os.environ.get("CONVEYOR_QUIET", "") not in ("", "0")
        stream = sys.stderr
        self.color = not os.environ.get("CI") and hasattr(stream, "isatty") and stream.isatty()
        self.console: Any = None
        if self.color and not self.quiet:
            from rich.console import Console

            self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.pipeline = pipeline
        self.run = run
        self.steps = steps
        self.started_at = time.monotonic()
        self._began: dict[str, float] = {}
        self._ended: set[str] = set()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self._line(f"running pipeline {pipeline!r} as run {run} on stack {stack!r} ({steps} steps)", "bold")

    def _line(self, text: str, style: str = "") -> None:
        if self.quiet:
            return
        with self.lock:
            if self.console is not None:
                self.console.print(f"{PREFIX}{text}", style=style or None, markup=False)
            else:
                # One write per line: a pipe gets each line whole, in one system call.
                sys.stderr.write(f"{PREFIX}{text}\n")
                sys.stderr.flush()

    def step_started(self, step_id: str) -> None:
        """A step began (its first attempt, or a retry)."""
        again = step_id in self._began
        self._began[step_id] = time.monotonic()
        self._line(f"{step_id}: {'retrying' if again else 'running'}", "blue")

    def step_ended(self, step_id: str, status: str, error: str | None = None) -> None:
        """A step ended: ``completed``, ``cached``, ``failed``, ``stopped`` or ``skipped``."""
        self.counts[status] = self.counts.get(status, 0) + 1
        self._ended.add(step_id)
        began = self._began.get(step_id)
        took = ""
        if began is not None and status not in ("skipped", "cached"):
            took = f" in {_seconds(time.monotonic() - began)}"
        detail = f": {error}" if error and status in ("failed", "skipped") else ""
        self._line(f"{step_id}: {status}{took}{detail}", _STYLES.get(status, ""))

    def run_ended(self, status: str) -> None:
        """The run ended."""
        if status == "stopped":  # steps still running when it was stopped were stopped with it
            cut = len(set(self._began) - self._ended)
            if cut:
                self.counts["stopped"] = self.counts.get("stopped", 0) + cut
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        took = _seconds(time.monotonic() - self.started_at)
        self._line(f"run {self.run} {status} in {took} ({counts or 'no steps'})", _STYLES.get(status, "bold"))
