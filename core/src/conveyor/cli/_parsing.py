"""Turning free-form command line words into config values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def parse_value(text: str) -> Any:
    """A JSON value when ``text`` parses as one (numbers, true/false, lists, objects), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_component_options(words: Sequence[str]) -> dict[str, Any]:
    """``--key value``, ``--key=value`` and bare ``--flag`` words as a config dict.

    Hyphens in keys become underscores; a bare flag is ``true``.

    Raises:
        click.UsageError: a word is not an option, or an option is given twice.
    """
    config: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--") or word == "--":
            raise click.UsageError(f"unexpected argument {word!r}: give component options as --key value")
        key, eq, value = word[2:].partition("=")
        if eq:
            parsed: Any = parse_value(value)
            i += 1
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            parsed = parse_value(words[i + 1])
            i += 2
        else:
            parsed = True
            i += 1
        key = key.replace("-", "_")
        if not key:
            raise click.UsageError(f"option {word!r} has no name")
        if key in config:
            raise click.UsageError(f"option --{key.replace('_', '-')} is given twice")
        config[key] = parsed
    return config


def parse_params(values: Sequence[str], option: str = "--param") -> dict[str, Any]:
    """``k=v`` words as ``{k: value}`` (values parsed as JSON when they parse).

    Raises:
        click.BadParameter: a word has no ``=``.
    """
    params: dict[str, Any] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        params[key.strip()] = parse_value(value)
    return params
