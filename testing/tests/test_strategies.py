"""The shared hypothesis strategies: names follow the naming rule exactly; hostile text reaches every trap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import find, given, settings

from conveyor_testing.strategies import FRAGMENTS, LINE_BREAKS, hostile_text, is_name, names


@pytest.mark.parametrize(
    "name",
    ["a", "0", "_", "Ab_c-d.e f", "٣٤", "中文 名字", "İstanbul", "a" * 255, "é" * 127, "_..", "1.0", "null"],
)
def test_the_rule_allows(name: str) -> None:
    assert is_name(name)


@pytest.mark.parametrize(
    "name",
    ["", " a", "a ", "-a", ".a", "a/b", "a\nb", "a\x00", "a=b", "{a}", "a" * 256, "é" * 128, "a\u0301", "a\u2028"],
)
def test_the_rule_refuses(name: str) -> None:
    assert not is_name(name)


@settings(max_examples=300, deadline=None, database=None)
@given(names())
def test_names_follow_the_rule(name: str) -> None:
    assert 1 <= len(name) <= 255 and len(name.encode()) <= 255
    assert name[0].isalnum() or name[0] == "_"
    assert all(c.isalnum() or c in "_-. " for c in name)
    assert not name.endswith(" ")


def test_names_reach_the_awkward_corners() -> None:
    seen: list[str] = []

    @settings(max_examples=400, deadline=None, database=None)
    @given(names())
    def collect(name: str) -> None:
        seen.append(name)

    collect()
    assert any(n[0].isdigit() for n in seen)
    assert any(not n.isascii() for n in seen)
    assert any(" " in n for n in seen) and any("." in n for n in seen)
    assert any(len(n) == 255 or len(n.encode()) >= 250 for n in seen)


def test_hostile_text_reaches_every_line_break_and_long_strings() -> None:
    seen: list[str] = []

    @settings(max_examples=600, deadline=None, database=None)
    @given(hostile_text())
    def collect(text: str) -> None:
        seen.append(text)

    collect()
    assert all(not any("\ud800" <= c <= "\udfff" for c in t) for t in seen)  # every text fits in UTF-8
    assert set(LINE_BREAKS) <= set(FRAGMENTS)
    # Each line break, and a long text, is found by searching (not by hoping a sample has it).
    search = settings(max_examples=5000, database=None)
    for brk in ("\n", "\r", "\u2028", "\u2029", "\x85"):
        assert brk in find(hostile_text(), lambda t, brk=brk: brk in t, settings=search)
    assert len(find(hostile_text(), lambda t: len(t) >= 1000, settings=search)) >= 1000


def test_importing_the_strategies_needs_no_hypothesis() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "from conveyor_testing import strategies\n"
        "assert strategies.is_name('a')\n"
        "try:\n    strategies.names()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'conveyor-testing[hypothesis]'" in out
