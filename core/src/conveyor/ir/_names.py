"""The one naming rule for everything that becomes part of a path, a URL or an engine's id.

Pipeline names, step ids and names, output names and run names become
folders of the artifact store (``<pipeline>/<step>/<run>/<output>/``), keys
of an object store and ids in every engine, so they are checked here, before
anything runs and again whenever a stored deployment is read back.
"""

from __future__ import annotations

MAX_NAME_BYTES = 255
"""The longest file name most filesystems allow, in UTF-8 bytes."""

NAME_RULE = (
    "names are 1 to 255 bytes of letters, digits, '_', '-', '.' and inner spaces, "
    "starting with a letter, a digit or '_'"
)
"""The rule in words, for error messages and the README."""

_PUNCTUATION = frozenset("_-. ")


def shown(value: object, limit: int = 60) -> str:
    """``repr`` of a name (or any value), cut to ``limit`` characters for an error line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def name_problem(value: object) -> str | None:
    """What is wrong with a name under :data:`NAME_RULE`, or None when it is fine."""
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
