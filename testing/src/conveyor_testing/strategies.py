"""Hypothesis strategies for values that cross a trust boundary (needs ``hypothesis``).

:func:`names` draws names conveyor accepts (pipelines, steps, outputs,
parameters); :func:`hostile_text` draws text that breaks code generators,
shells and templates. A compiler must keep both as data.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text that has broken code generators somewhere: quotes, escapes, line breaks Python,
# JavaScript or YAML see, template and shell syntax, Python that would run if pasted.
TRICKY = (
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "\\'",
    "\n",
    "\r",
    "\r\n",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "\x00",
    "\t",
    "#",
    "{{ x }}",
    "{% if True %}{% endif %}",
    "{#",
    "${x}",
    "$(id)",
    "`id`",
    "; rm -rf /",
    "--help",
    "__import__('os').system('id')",
    "'); __import__('os').system('id'); ('",
    '"\n__import__("os").system("id")\n"',
    "\ufeff",
    "\u202e",
    "\N{SNOWMAN}",
    "é",
)

# Names Dagster, Airflow and Python treat specially, but conveyor allows.
SPECIAL_NAMES = (
    "input",
    "output",
    "class",
    "True",
    "None",
    "context",
    "a b",
    "a_b",
    "a-b",
    "a.b",
    "_",
    "0",
    "naïve",
    "données 2",
    "x" * 255,
)

_NAME_FIRST = st.one_of(st.characters(categories=("L", "N")), st.just("_"))
_NAME_REST = st.one_of(st.characters(categories=("L", "N")), st.sampled_from("_-. "))


def names() -> st.SearchStrategy[str]:
    """Names conveyor's naming rule accepts (``conveyor.ir.name_problem(name) is None``)."""
    from conveyor.ir import name_problem

    drawn = st.builds(lambda first, rest: (first + rest).rstrip(" "), _NAME_FIRST, st.text(_NAME_REST, max_size=30))
    return st.one_of(st.sampled_from(SPECIAL_NAMES), drawn).filter(lambda name: name_problem(name) is None)


def hostile_text() -> st.SearchStrategy[str]:
    """Any text JSON can carry, weighted towards what breaks code generators (NUL included)."""
    tricky = st.sampled_from(TRICKY)
    anything = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
    mixed: Any = st.lists(st.one_of(tricky, anything), min_size=2, max_size=5).map("".join)
    return st.one_of(tricky, anything, mixed)
