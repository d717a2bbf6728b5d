"""The ``.dockerignore`` syntax, which ``.conveyorignore`` shares: reading patterns and matching paths.

It follows Docker's rules: one pattern a line; a line starting with ``#`` is
a comment; surrounding whitespace is dropped; each pattern is cleaned like a
path (``./a//b/`` is ``a/b``, a leading ``/`` means the source root); ``*``
and ``?`` match within one path segment, ``**`` any number of segments,
``[...]`` a character class (``[^...]`` negated), ``\\`` makes the next
character literal; a pattern that matches a folder leaves out everything in
it; ``!pattern`` puts back what earlier lines left out, and the last
matching line wins.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conveyor.exceptions import ConfigError

CONVEYORIGNORE = ".conveyorignore"
"""Patterns of files of the source root that never go into an image, whatever .dockerignore says."""
DOCKERIGNORE = ".dockerignore"


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool  # a ``!`` line: puts back what earlier lines left out


class IgnoreRules:
    """Ordered ignore patterns that say which relative paths (``a/b.py``) are left out.

    Args:
        patterns: patterns as a ``.dockerignore`` file holds them (already without comments).
        source: where they come from, for errors.

    Raises:
        ConfigError: a pattern is malformed (an unclosed ``[``, a bad range, a lone ``!``).
    """

    def __init__(self, patterns: Iterable[str] = (), *, source: str = "ignore patterns") -> None:
        self._patterns: list[_Pattern] = []
        for text in patterns:
            compiled = _compile(text, source)
            if compiled is not None:
                self._patterns.append(compiled)

    @classmethod
    def read(cls, path: Path) -> IgnoreRules:
        """The patterns of an ignore file (an absent file has none).

        Raises:
            ConfigError: the file cannot be read, or holds a malformed pattern.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        return cls(parse_lines(data.decode("utf-8", "surrogateescape")), source=str(path))

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        both = IgnoreRules()
        both._patterns = [*self._patterns, *other._patterns]
        return both

    @property
    def has_exceptions(self) -> bool:
        """Whether a ``!`` pattern may put back a file inside a left-out folder."""
        return any(p.exclusion for p in self._patterns)

    def excludes(self, rel: str) -> bool:
        """Whether the relative path ``rel`` (``/``-separated) is left out."""
        parts = rel.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue  # it could not change the outcome
            if pattern.regex.fullmatch(rel) or any(pattern.regex.fullmatch(p) for p in parents):
                matched = not pattern.exclusion
        return matched


def parse_lines(text: str) -> list[str]:
    """The patterns of an ignore file's text: comments and blank lines dropped, each pattern cleaned."""
    out = []
    for i, line in enumerate(text.split("\n")):
        if i == 0:
            line = line.removeprefix("\ufeff")
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        line = line.strip()
        if line:
            out.append(line)
    return out


def _clean(pattern: str) -> str:
    """Go's ``filepath.Clean``, then relative to the root (what Docker does to each pattern)."""
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")  # POSIX keeps two leading slashes, Go does not
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def _compile(text: str, source: str) -> _Pattern | None:
    pattern = text.strip()
    exclusion = pattern.startswith("!")
    if exclusion:
        pattern = pattern[1:].strip()
        if not pattern:
            raise ConfigError(f"{source}: the pattern '!' names nothing to put back")
    if not pattern:
        return None
    pattern = _clean(pattern)
    if pattern == ".":
        return None  # Docker ignores the pattern "." (it would leave out everything)
    try:
        regex = re.compile(_translate(pattern), re.DOTALL)
    except (ValueError, re.error) as exc:
        raise ConfigError(
            f"{source}: bad pattern {text!r}: {exc}", "see the .dockerignore syntax; \\ makes a character literal"
        ) from None
    return _Pattern(text=text, regex=regex, exclusion=exclusion)


def _translate(pattern: str) -> str:
    """A regular expression for a cleaned pattern (matched against the whole relative path)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(?:.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            cls, i = _translate_class(pattern, i)
            out.append(cls)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """``[...]`` from just after its ``[``: Go's ``filepath.Match`` class, which never matches ``/``."""
    n = len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    items: list[str] = []
    while True:
        if i >= n:
            raise ValueError("unclosed [")
        ch = pattern[i]
        if ch == "]" and items:
            i += 1
            break
        if ch == "]":
            raise ValueError("empty []")
        lo, i = _class_char(pattern, i)
        if i < n and pattern[i] == "-" and i + 1 < n and pattern[i + 1] != "]":
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                raise ValueError(f"bad range {lo}-{hi}")
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            items.append(re.escape(lo))
    body = "".join(items)
    return (f"[^/{body}]" if negated else f"(?!/)[{body}]"), i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise ValueError("\\ at the end of a [] class")
        return pattern[i + 1], i + 2
    return pattern[i], i + 1
