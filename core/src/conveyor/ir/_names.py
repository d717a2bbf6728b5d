"""The one naming rule for everything that becomes part of a path, a URL or an engine's id.

Pipeline names, step ids and names, output names and run names become
folders of the artifact store (``<pipeline>/<step>/<run>/<output>/``), keys
of an object store and ids in every engine, so they are checked here, before
anything runs and again whenever a stored deployment is read back.
"""

from __future__ import annotations

import re

MAX_NAME_BYTES = 255
"""The longest file name most filesystems allow, in UTF-8 bytes."""

NAME_RULE = (
    "names are 1 to 255 bytes of letters, digits, '_', '-', '.' and inner spaces, "
    "starting with a letter, a digit or '_'"
)
"""The rule in words, for error messages and the README."""

_PUNCTUATION = frozenset("_-. ")

# The rule as one pattern, for the common case (`\w` is exactly `str.isalnum()` or "_").
_FINE = re.compile(r"\w[\w\-. ]*(?<! )")
_SURELY_SHORT = MAX_NAME_BYTES // 4  # no character is more than 4 bytes of UTF-8


def shown(value: object, limit: int = 60) -> str:
    """``repr`` of a name (or any value), cut to ``limit`` characters for an error line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def name_problem(value: object) -> str | None:
    """What is wrong with a name under :data:`NAME_RULE`, or None when it is fine."""
    if type(value) is str and len(value) <= _SURELY_SHORT and _FINE.fullmatch(value):
        return None
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if not value:
        return "is empty"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long; the limit is {MAX_NAME_BYTES}"
    first = value[0]
    if not (first.isalnum() or first == "_"):
        return f"starts with {first!r}; it must start with a letter, a digit or '_'"
    for ch in value:
        if not (ch.isalnum() or ch in _PUNCTUATION):
            return f"contains {ch!r} (U+{ord(ch):04X})"
    if value.endswith(" "):
        return "ends with a space"
    return None


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a valid name; otherwise raise ``ValueError`` saying why.

    Args:
        what: what the name is, for the message (``"step id"``).
    """
    problem = name_problem(value)
    if problem is not None:
        subject = shown(value) if isinstance(value, str) else repr(type(value))
        raise ValueError(f"{what} {subject} {problem} ({NAME_RULE})")
    assert isinstance(value, str)
    return value


RESERVED_OUTPUT_NAMES = frozenset({"logs.txt"})
"""Files of the store layout that sit beside a step's outputs (``<pipeline>/<step>/<run>/logs.txt``)."""


def output_name_problem(value: object) -> str | None:
    """What is wrong with an output name (the naming rule, and the store layout's own files)."""
    problem = name_problem(value)
    if problem is None and value in RESERVED_OUTPUT_NAMES:
        return "is reserved for the step's log file"
    return problem


RUN_NAME_FIELDS = ("date", "time", "pipeline")
"""What a ``run_name`` template may use: ``{date}``, ``{time}``, ``{pipeline}`` (``{{date}}`` works too)."""


def _normalize_template(template: str) -> str:
    # ZenML spells placeholders {{date}}; str.format would read that as a literal "{date}".
    for name in RUN_NAME_FIELDS:
        template = template.replace("{{" + name + "}}", "{" + name + "}")
    return template


def fill_run_name(template: str, pipeline: str, date: str, time: str) -> str:
    """A run name from a template whose fields were checked with :func:`run_name_template_problem`."""
    return _normalize_template(template).format(date=date, time=time, pipeline=pipeline)


def run_name_template_problem(template: object) -> str | None:
    """What is wrong with a ``run_name`` template, or None when every run name it makes is valid."""
    import string

    if not isinstance(template, str):
        return f"is a {type(template).__name__}, not a string"
    try:
        parsed = list(string.Formatter().parse(_normalize_template(template)))
    except ValueError as exc:
        return f"is not a valid template ({exc}; write {{{{ and }}}} for literal braces)"
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in RUN_NAME_FIELDS or spec or conversion:
            extra = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            known = ", ".join("{" + f + "}" for f in RUN_NAME_FIELDS)
            return f"uses an unknown field {{{field}{extra}}} (run names can use {known})"
    # The longest date/time and a one-letter pipeline: what the fields add is fixed but for the pipeline name.
    sample = fill_run_name(template, "p", "2000_01_01", "00_00_00_000000")
    problem = name_problem(sample)
    if problem is not None:
        return f"makes names like {shown(sample)}, which {problem}"
    return None


MAX_SOURCE_LENGTH = 1024
"""The longest ``module:qualname`` source a step, materializer or hook may have (a column's width)."""


def hook_source_problem(value: object) -> str | None:
    """What is wrong with a hook's source (``package.module:function``), or None when it is well formed.

    Only the shape is checked here; whether it names a function is checked where it is loaded.
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if len(value) > MAX_SOURCE_LENGTH:
        return f"is {len(value)} characters long; the limit is {MAX_SOURCE_LENGTH}"
    module, sep, qualname = value.partition(":")
    if not sep:
        return "is not of the form module:function"
    for part in (*module.split("."), *qualname.split(".")):
        if not part.isidentifier():
            return "is not of the form module:function (dotted Python identifiers)"
    return None


LATEST = "latest"
"""The version reference that always means a model's newest version."""

MAX_VERSION_NUMBER = 2**31 - 1
"""The highest version number (a 32-bit SQL integer)."""


def _is_number(value: str) -> bool:
    return value.isascii() and value.isdigit()


def version_name_problem(value: object) -> str | None:
    """What is wrong with the name of a model version or an alias, or None when it is fine.

    Names follow :data:`NAME_RULE`; they cannot be all digits (version numbers
    are) nor ``latest`` (it always means the newest version).
    """
    problem = name_problem(value)
    if problem is not None:
        return problem
    assert isinstance(value, str)
    if value.isdigit():
        return "is all digits, which is how version numbers are written"
    if value == LATEST:
        return "is reserved: 'latest' always means the newest version"
    return None


def version_reference_problem(value: object) -> str | None:
    """What is wrong with a reference to a model version (a number, ``latest``, an alias or a name), or None."""
    if isinstance(value, str) and _is_number(value):
        if len(value) > 10 or not 1 <= int(value) <= MAX_VERSION_NUMBER:
            return f"is not a version number (versions are numbered from 1 to {MAX_VERSION_NUMBER})"
        return None
    if value == LATEST:
        return None
    return name_problem(value)


def normalize_version(value: str) -> str:
    """A version reference in its one spelling (``"007"`` is ``"7"``)."""
    return str(int(value)) if _is_number(value) else value


def parse_model_reference(text: str) -> tuple[str, str, str | None] | None:
    """Split ``MODEL@VERSION`` or ``MODEL@VERSION/ARTIFACT`` into its parts; None when ``text`` has no ``@``.

    Raises:
        ValueError: the text has an ``@`` but is not a valid reference (saying why).
    """
    if "@" not in text:
        return None
    model, _, rest = text.partition("@")
    version, slash, artifact = rest.partition("/")
    problem = name_problem(model)
    if problem is not None:
        raise ValueError(f"model name {shown(model)} {problem} ({NAME_RULE})")
    problem = version_reference_problem(version)
    if problem is not None:
        raise ValueError(f"model version {shown(version)} {problem}")
    if slash and not artifact_name_ok(artifact):
        raise ValueError(f"artifact name {shown(artifact)} is empty, too long or holds a control character")
    return model, normalize_version(version), (artifact if slash else None)


def artifact_name_ok(value: object) -> bool:
    """Whether a string can name an artifact in a reference (1 to 1024 characters, no control character)."""
    return isinstance(value, str) and 0 < len(value) <= 1024 and value.isprintable()
