"""One grammar for compute resources, parsed once into the IR; engines only format the result.

Memory is read into a whole number of bytes: a number (decimals allowed)
and an optional unit, case-insensitive. ``K``/``KB``, ``M``/``MB``, ``G``,
``T``, ``P`` are powers of 1000; ``Ki``/``KiB``, ``Mi``, ``Gi``, ``Ti``,
``Pi`` are powers of 1024; ``B`` or nothing is bytes (``m`` is mega, as in
Docker, never Kubernetes' milli). ``1.5Gi`` is 1610612736 bytes, and every
engine gets exactly that: ``1536Mi`` for Kubernetes, the byte count for
Docker.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
    "pi": 2**50,
    "pib": 2**50,
}
"""Memory units by their lower-case spelling, in bytes."""

MEMORY_HINT = "write a size such as 512Mi, 2Gi, 1.5GB or a number of bytes"

_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_BINARY = (("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def parse_memory(value: object) -> int:
    """A memory size in bytes, from ``"1.5Gi"``, ``"512M"``, ``"4GB"`` or an integer.

    Raises:
        ValueError: not a size, an unknown unit, not a whole number of bytes, or not positive.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory {value!r} is not a size ({MEMORY_HINT})")
    if isinstance(value, int):
        amount = Decimal(value)
        unit = ""
    elif isinstance(value, str):
        match = _MEMORY.match(value)
        if match is None:
            raise ValueError(f"memory {value!r} is not a size ({MEMORY_HINT})")
        try:
            amount = Decimal(match.group(1))
        except InvalidOperation:
            raise ValueError(f"memory {value!r} is not a size ({MEMORY_HINT})") from None
        unit = match.group(2).lower()
        if unit not in MEMORY_UNITS:
            raise ValueError(f"memory {value!r} has an unknown unit {match.group(2)!r} ({MEMORY_HINT})")
    else:
        raise ValueError(f"memory must be a size such as '2Gi' or a number of bytes, not {type(value).__name__}")
    size = amount * MEMORY_UNITS[unit]
    if size != size.to_integral_value():
        raise ValueError(f"memory {value!r} is not a whole number of bytes ({MEMORY_HINT})")
    if size <= 0:
        raise ValueError(f"memory {value!r} must be more than 0 bytes")
    return int(size)


def memory_quantity(size: int) -> str:
    """A number of bytes as an exact Kubernetes quantity, in the unit that writes it shortest (``1536Mi``, ``512M``)."""
    exact = [(size // factor, suffix) for suffix, factor in (*_BINARY, *_DECIMAL) if size % factor == 0]
    amount, suffix = min([*exact, (size, "")], key=lambda c: len(str(c[0])))
    return f"{amount}{suffix}"


def cpu_quantity(cpu: float) -> str:
    """CPUs as a Kubernetes quantity: whole CPUs, else millicores (``0.5`` -> ``500m``)."""
    milli = round(cpu * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
