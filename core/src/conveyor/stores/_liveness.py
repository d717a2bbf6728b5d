"""Whether the process that owns a run is still alive, portably (psutil).

A run driven by a process on this machine records ``(host, pid, start
time)``. The start time tells a live owner from a new process that reused
the PID of one that was killed. When the start time of a live PID cannot be
read, the owner is taken to be alive: a live run is never failed on a guess.
"""

from __future__ import annotations

import os
import socket

# A start time is the kernel's boot time plus a tick count, and the boot time
# Linux reports is whole seconds derived from the clock, so it moves by a second
# when the clock is adjusted: two readings of one process can differ by 1 s. A
# PID reused within 2 s of the first owner's start would need the kernel's PIDs
# to wrap around in that time, so this tells the two apart without ever failing
# a live run.
_START_TOLERANCE = 2.0


def process_start_time(pid: int) -> float | None:
    """Seconds since the epoch when process ``pid`` started, or None when it cannot be told."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def current_process_identity() -> tuple[str, int, float | None]:
    """``(host, pid, start time)`` of this process, recorded with the runs it drives."""
    pid = os.getpid()
    return socket.gethostname(), pid, process_start_time(pid)


def process_is_gone(pid: int, started: float | None) -> bool:
    """True when the process recorded as ``(pid, started)`` on this host has certainly ended.

    A PID that does not exist is gone. A PID that exists is the same process
    unless both start times are known and differ (the PID was reused).
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        current = float(proc.create_time())
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError, ValueError):
        return False  # it exists, but cannot be inspected: never guess it dead
    if started is None:
        return False
    return abs(current - started) > _START_TOLERANCE
