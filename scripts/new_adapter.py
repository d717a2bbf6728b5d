"""Start a new engine adapter: copy ``adapters/_template`` and rename it.

    python scripts/new_adapter.py myengine            # writes adapters/myengine
    python scripts/new_adapter.py myengine --into DIR # writes DIR/myengine

Every ``template`` in file names and file contents becomes the new name
(``conveyor_template`` -> ``conveyor_myengine``, ``conveyor-template`` ->
``conveyor-myengine``, ``TemplateOrchestrator`` -> ``MyengineOrchestrator``,
``CONVEYOR_TEMPLATE_RUN_ID`` -> ``CONVEYOR_MYENGINE_RUN_ID``). The template's
golden files are left out: they hold deployment ids that change with the
flavor's name, so the new adapter writes its own on the first test run
(``CONVEYOR_UPDATE_GOLDEN=1``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "adapters" / "_template"
NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")
SKIPPED = {"__pycache__", ".hypothesis", ".pytest_cache", "golden"}


def replacements(name: str) -> list[tuple[str, str]]:
    """What becomes what, most specific first."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return [
        ("adapters/_template", f"adapters/{name}"),
        ("conveyor-template", f"conveyor-{name.replace('_', '-')}"),
        ("Template", camel),
        ("TEMPLATE", name.upper()),
        ("template", name),
    ]


def rename(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with every pair replaced (in one pass, so a replacement is never replaced again)."""
    table = dict(pairs)
    return re.sub("|".join(re.escape(old) for old, _ in pairs), lambda m: table[m.group(0)], text)


def copy_adapter(name: str, into: Path) -> Path:
    """Copy the template adapter to ``into/name`` with every ``template`` renamed; return the new folder."""
    if not NAME.match(name) or name == "template":
        raise SystemExit(
            f"new_adapter: {name!r} is not a lowercase Python identifier (a-z, 0-9, _) other than template"
        )
    target = into / name
    if target.exists():
        raise SystemExit(f"new_adapter: {target} exists already")
    pairs = replacements(name)
    for source in sorted(TEMPLATE.rglob("*")):
        relative = source.relative_to(TEMPLATE)
        if SKIPPED.intersection(relative.parts) or source.name.endswith(".egg-info"):
            continue
        destination = target / rename(str(relative), pairs)
        if source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(rename(source.read_text(encoding="utf-8"), pairs), encoding="utf-8")
        shutil.copymode(source, destination)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: ``new_adapter.py NAME [--into DIR]``."""
    parser = argparse.ArgumentParser(description="copy adapters/_template into a new engine adapter")
    parser.add_argument("name", help="the engine's name: the flavor users type, conveyor_NAME, conveyor-NAME")
    parser.add_argument("--into", type=Path, default=ROOT / "adapters", help="parent folder (default: adapters/)")
    args = parser.parse_args(argv)
    target = copy_adapter(args.name, args.into)
    print(f"wrote {target}; next: pip install -e {target}, then CONVEYOR_UPDATE_GOLDEN=1 pytest {target}/tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
