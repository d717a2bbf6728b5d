"""Every install command the docs and the error messages print, checked from this clone.

``python scripts/install_commands.py`` lists them; ``--check PYTHON`` resolves
each one with ``uv pip install --dry-run`` into the (empty) environment of
PYTHON, from the root of the clone, as a user on a fresh machine would run
it. The quickstart nox session runs the check.

Commands come from the shell blocks and inline code of the README files and
docs, and from the string constants of the distributions' sources (flavor
``install`` declarations, error hints). Placeholders (``NAME``,
``<engine>``, ``myengine``) and commands that name nothing to install are left out.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ROOT / "constraints" / "overrides.txt"
DOCS = ["README.md", "adapters/*/README.md", "integrations/*/README.md", "plugins/*/README.md", "docs/*.md"]
SOURCES = ["core/src", "adapters/*/src", "integrations/*/src", "plugins/*/src"]
_COMMAND = re.compile(r"""(?:uv )?pip install((?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|[^\s"'()`,;&|#]+))+)""")
# `myengine` names an adapter copied from the template, which does not exist in the clone:
# the template session copies, installs and tests such a copy.
_PLACEHOLDERS = ("NAME", "<", "{", "...", "myengine")


def _commands_in(text: str) -> list[str]:
    out = []
    for match in _COMMAND.finditer(text):
        args = match.group(1).strip()
        if any(p in args for p in _PLACEHOLDERS):
            continue
        words = shlex.split(args)
        if any(not w.startswith("-") for w in words):
            out.append(f"pip install {args}")
    return out


def _doc_texts() -> list[tuple[str, str]]:
    texts = []
    for pattern in DOCS:
        for path in sorted(ROOT.glob(pattern)):
            # A shell line continued with a backslash is one command.
            texts.append((str(path.relative_to(ROOT)), path.read_text().replace("\\\n", " ")))
    return texts


def _source_texts() -> list[tuple[str, str]]:
    texts = []
    for pattern in SOURCES:
        for folder in sorted(ROOT.glob(pattern)):
            for path in sorted(folder.rglob("*.py")):
                tree = ast.parse(path.read_text())
                docstrings = {
                    id(node.body[0].value)
                    for node in ast.walk(tree)
                    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                    and node.body
                    and isinstance(node.body[0], ast.Expr)
                    and isinstance(node.body[0].value, ast.Constant)
                }
                for node in ast.walk(tree):
                    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                        texts.append((str(path.relative_to(ROOT)), node.value))
    return texts


def commands() -> dict[str, list[str]]:
    """``{command: [where it is printed]}``."""
    found: dict[str, list[str]] = {}
    for where, text in [*_doc_texts(), *_source_texts()]:
        for command in _commands_in(text):
            found.setdefault(command, []).append(where)
    return found


def _uv_args(command: str) -> list[str]:
    """The arguments of ``pip install ...`` for ``uv pip install --dry-run``, without its own ``--python``."""
    words = shlex.split(command)[2:]
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--python", "--override"):
            skip = True  # the check's own environment and overrides are used
            continue
        if word == "--compile-bytecode":
            continue
        out.append(word)
    return out


def check(python: str) -> int:
    """Resolve every command into ``python``'s environment; returns the number that failed."""
    failed = 0
    for command, where in sorted(commands().items()):
        argv = ["uv", "pip", "install", "--dry-run", "--python", python, "--override", str(OVERRIDES)]
        argv += _uv_args(command)
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        status = "ok" if proc.returncode == 0 else "FAILED"
        print(f"{status}: {command}  ({', '.join(sorted(set(where)))})")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr.strip(), file=sys.stderr)
    print(f"{len(commands()) - failed} passed, {failed} failed")
    return failed


def main() -> int:
    """List the commands, or check them with ``--check PYTHON``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="PYTHON", help="resolve each command into this interpreter's environment")
    args = parser.parse_args()
    if args.check:
        return 1 if check(args.check) else 0
    for command, where in sorted(commands().items()):
        print(f"{command}  ({', '.join(sorted(set(where)))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
