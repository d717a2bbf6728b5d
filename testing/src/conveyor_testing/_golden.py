"""Golden files: compiled output compared byte for byte with a file kept in the repository."""

from __future__ import annotations

import os
from pathlib import Path

UPDATE_GOLDEN = "CONVEYOR_UPDATE_GOLDEN"


def assert_golden(path: Path, text: str) -> None:
    """Assert that ``text`` is exactly the content of the golden file ``path``.

    With ``CONVEYOR_UPDATE_GOLDEN=1`` in the environment the file is
    (re)written first, so an intended change is one rerun away; review the
    diff before committing it.

    Raises:
        AssertionError: the texts differ, or the golden file does not exist.
    """
    if os.environ.get(UPDATE_GOLDEN) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        # Bytes, not text: the file must hold exactly what was compiled, on any platform.
        path.write_bytes(text.encode("utf-8"))
    hint = f"rerun with {UPDATE_GOLDEN}=1 if that is intended"
    assert path.is_file(), f"golden file {path} is missing; {hint}"
    expected = path.read_bytes().decode("utf-8")
    assert text == expected, f"{path.name} changed: {hint}\n{_first_difference(expected, text)}"


def _first_difference(expected: str, actual: str) -> str:
    for number, (want, got) in enumerate(zip(expected.splitlines(), actual.splitlines(), strict=False), start=1):
        if want != got:
            return f"first difference at line {number}:\n- {want}\n+ {got}"
    return f"the golden file has {len(expected.splitlines())} lines, the output {len(actual.splitlines())}"
