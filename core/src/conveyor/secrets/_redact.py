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


def _leaves(value: str) -> list[str]:
    # A value that is a JSON document (a GCP service account key) is printed in
    # parts once a step parses it: each string inside is a secret too.
    if not value.lstrip().startswith(("{", "[")):
        return []
    import json

    try:
        doc = json.loads(value)
    except ValueError:
        return []
    out: list[str] = []
    pending = [doc]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return out


def mask_values(values: Iterable[str]) -> None:
    """Mask these values in step logs of this process from now on.

    Each line of a multi-line value, and each string inside a value that is a
    JSON document, is masked too.
    """
    global _pattern
    new = set()
    for value in values:
        if not isinstance(value, str):
            continue
        for whole in (value, *_leaves(value)):
            for part in (whole, *(line.strip() for line in whole.splitlines())):
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
