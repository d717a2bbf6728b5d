"""Hypothesis strategies for what crosses a trust boundary: the names conveyor accepts, and hostile text.

:func:`names` generates exactly the names the naming rule allows (pipeline
names, step ids and names, output names, run names): 1 to 255 characters and
at most 255 UTF-8 bytes, each a Unicode letter or digit (``str.isalnum``),
``_``, ``-``, ``.`` or a space, starting with a letter, digit or ``_`` and not
ending in a space. :func:`hostile_text` generates any text JSON can hold,
weighted towards what breaks code generators: line breaks of every kind,
quotes, escapes, template and shell syntax, YAML markers and tags, NUL, and
very long strings.

Importing this module needs no hypothesis; calling a strategy without it
raises :class:`ImportError` that names the install command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

MAX_NAME_CHARS = 255
"""Most characters a name may have."""
MAX_NAME_BYTES = 255
"""Most UTF-8 bytes a name may have."""
NAME_PUNCTUATION = "_-. "
"""The characters besides letters and digits a name may hold (a space is never the last)."""

LINE_BREAKS = ("\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
"""Every character some parser takes for the end of a line (YAML, Python's ``splitlines``, JavaScript)."""

FRAGMENTS = (
    *LINE_BREAKS,
    "\x00",
    "\t",
    "\x7f",
    "\x1b[2J",
    "\ufeff",
    "\u200b",
    "\u202e",
    "e\u0301",
    "\U0001f600",
    "'",
    '"',
    "\\",
    "`",
    "'''",
    '"""',
    "\\n",
    "\\x00",
    "\\u2028",
    "{{",
    "}}",
    "{{ dag.dag_id }}",
    "{{ 7*7 }}",
    "{%",
    "%}",
    "{% raw %}",
    "{#",
    "#}",
    "{}",
    "{0}",
    "{x}",
    "{x.__class__}",
    "%s",
    "%(x)s",
    "${HOME}",
    "$(id)",
    "`id`",
    "$PATH",
    ";",
    "&&",
    "|",
    "#",
    "# ",
    "---",
    "...",
    "--- !!python/object/apply:os.system ['id']",
    "!!python/object:os.system",
    "!!python/name:os.system",
    "!!binary",
    "!ruby/object",
    "&anchor",
    "*alias",
    "<<",
    "<<: *alias",
    "? ",
    ": ",
    ":",
    "- ",
    "-",
    "- image: evil",
    "%YAML 1.1",
    "%TAG ! tag:evil.example,2000:",
    "@",
    "|",
    "|-",
    ">",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "==",
    "null",
    "~",
    "true",
    "no",
    "NO",
    "on",
    "0x1F",
    "0o17",
    "1e3",
    "1_000",
    ".inf",
    "-.nan",
    "0",
    "-0",
    "2001-12-14",
    "12:30:00",
    " ",
    "  ",
    "{{$.inputs.parameters['conveyor_step']}}",
    "{{$.pipeline_job_uuid}}",
    '{"Concat": ["x"]}',
    '{"IfPresent": {}}',
    "__import__('os').system('id')",
    "');import os;os.system('id');('",
    '")\nimport os\nos.system("id")\n#',
    "</script>",
    "<!--",
    "..",
    "../",
    "/",
    "%",
    "&",
    "<",
    ">",
)
"""Pieces of text that break generated code, YAML, templates or shells when not escaped."""


def _hypothesis() -> Any:
    try:
        import hypothesis.strategies as st
    except ImportError:
        raise ImportError(
            "conveyor_testing.strategies needs hypothesis: pip install 'conveyor-testing[hypothesis]'"
        ) from None
    return st


def is_name(text: str) -> bool:
    """Whether ``text`` is a name the naming rule allows."""
    return (
        0 < len(text) <= MAX_NAME_CHARS
        and len(text.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
        and all(c.isalnum() or c in NAME_PUNCTUATION for c in text)
        and (text[0].isalnum() or text[0] == "_")
        and not text.endswith(" ")
    )


# Letters and digits that trip up code which assumes ASCII: scripts written right to left,
# digits int() reads, case mappings that change the length, compatibility and title-case forms.
_AWKWARD_ALNUM = "٣۴߇३৫௬๗ΣσςİıßẞǅǈﬁⅫ½²〇中文字日本語한국어אבגعربيमराठीไทย𝔘𝟙ÅÅ"
# Names that other parsers take for something else: YAML's null, booleans and numbers, Python's keywords.
_AWKWARD_NAMES = (
    "0",
    "1.0",
    "1e3",
    "0x1F",
    "1_000",
    "null",
    "Null",
    "true",
    "False",
    "yes",
    "NO",
    "on",
    "None",
    "NaN",
    "inf",
    "import",
    "class",
    "_",
    "__",
    "_.",
    "a..b",
    "a b",
    "a  b",
    "a-",
    "a.",
    "a_",
    "a -.b",
    "ﬁ",
    "İstanbul",
    "٣٤",
    "中文 名字",
    "Ⅻ.½",
)


def _fit(text: str) -> str:
    """``text`` cut to the name rule's limits, without a trailing space."""
    text = text[:MAX_NAME_CHARS]
    while len(text.encode("utf-8")) > MAX_NAME_BYTES:
        text = text[:-1]
    return text.rstrip(" ")


def names() -> SearchStrategy[str]:
    """Every name the naming rule allows, weighted towards awkward ones.

    Non-Latin scripts, digits first, dots, hyphens and inner spaces, YAML
    keywords and numbers, and names at the character and byte limits.

    Raises:
        ImportError: hypothesis is not installed.
    """
    st = _hypothesis()
    alnum = st.one_of(
        st.characters(categories=("L", "N")).filter(str.isalnum),
        st.sampled_from(_AWKWARD_ALNUM).filter(str.isalnum),
        st.sampled_from("aZ09"),
    )
    first = st.one_of(alnum, st.just("_"))
    rest = st.one_of(alnum, st.sampled_from(NAME_PUNCTUATION))
    drawn = st.builds(lambda a, b: _fit(a + "".join(b)), first, st.lists(rest, max_size=40))
    longest = st.one_of(
        st.builds(lambda a, b: _fit(a + b * MAX_NAME_CHARS), first, rest),
        st.builds(lambda a, b: _fit((a + b) * MAX_NAME_CHARS), first, rest),
        st.builds(lambda a: _fit(a * MAX_NAME_CHARS), alnum),
    )
    return st.one_of(st.sampled_from(_AWKWARD_NAMES), drawn, longest).filter(is_name)


def hostile_text(*, max_size: int = 64) -> SearchStrategy[str]:
    """Any text JSON can hold, weighted towards what breaks code generators and parsers.

    Line breaks of every kind (``\\n``, ``\\r``, U+2028, U+2029, U+0085),
    quotes and backslashes, Jinja (``{{ }}``, ``{% %}``), shell (``${}``,
    ``$(...)``), ``#``, YAML document markers (``---``, ``...``) and tags
    (``!!python/object``), NUL, and very long strings. Lone surrogates, which
    no UTF-8 file can hold, are left out.

    Args:
        max_size: most characters of the random text between the fragments
            (the long strings are longer).

    Raises:
        ImportError: hypothesis is not installed.
    """
    st = _hypothesis()
    chars = st.characters(exclude_categories=("Cs",))
    fragment = st.sampled_from(FRAGMENTS)
    random = st.text(chars, max_size=max_size)
    mixed = st.lists(st.one_of(fragment, fragment, random), min_size=1, max_size=6).map("".join)
    long = st.builds(
        lambda piece, count, tail: piece * count + tail,
        st.one_of(fragment, st.text(chars, min_size=1, max_size=8), st.just("a "), st.just("x")),
        st.integers(min_value=100, max_value=3000),
        st.one_of(st.just(""), fragment),
    )
    return st.one_of(fragment, random, mixed, mixed, long)
