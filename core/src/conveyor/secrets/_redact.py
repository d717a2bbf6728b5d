"""Masking secret values in what a step writes: values resolved in this process are replaced by ``***``.

Imported by the step log capture on every write, so it depends on nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
"""What a secret value is replaced with."""

MIN_LENGTH = 4
"""Shorter values are not masked: masking ``"1"`` or ``"any"`` would garble every log line."""

_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def mask_values(values: Iterable[str]) -> None:
    """Mask these values (and each line of a multi-line value) in step logs of this process from now on."""
    global _pattern
    new = set()
    for value in values:
        if not isinstance(value, str):
            continue
        for part in (value, *(line.strip() for line in value.splitlines())):
            if len(part) >= MIN_LENGTH:
                new.add(part)
    with _lock:
        if new <= _values:
            return
        _values.update(new)
        # Longest first, so that a value containing another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """``text`` with every masked value replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)
