"""Which files of the source root are the user's code, copied into the image.

In a git checkout, the code is what git tracks under the source root (files
added with ``git add`` included, and their content as it is on disk now,
edits not yet committed included); untracked files are not code, whether
git ignores them or not, so an export written into the project, a scratch
file or an output folder never changes the image. Outside a git checkout
(or where git tracks nothing under the source root) it is every file of the
folder. Either way, files matched by ``.dockerignore`` or ``.conveyorignore``
are left out, and so are, always:

* version control and tool folders (``.git``, ``.hg``, ``.svn``, ``.venv``,
  ``.nox``, ``__pycache__``, ...), ``*.pyc`` files and ``.conveyor/``;
* files conveyor's orchestrators write (Airflow DAG files, KFP specs, Prefect
  deployment files), recognised by their first bytes: they name the image,
  so an image made from them could never be made again;
* anything that is not a regular file or a symbolic link, and anything whose
  path leaves the source root through a symbolic link. Symbolic links are
  copied as links, never followed.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.exceptions import ConfigError
from conveyor_docker._ignore import CONVEYORIGNORE, DOCKERIGNORE, IgnoreRules
from conveyor_docker._settings import DockerSettings

NEVER_COPIED = frozenset(
    {
        ".conveyor",
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".jj",
        "__pycache__",
        ".venv",
        ".nox",
        ".tox",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    }
)
"""Names of folders (and files) that never go into an image, at any depth, whatever the ignore files say."""
_NEVER_SUFFIXES = (".pyc", ".pyo")
# The first bytes of what conveyor's orchestrators write (see each adapter's compiler and its golden files).
_COMPILED_SUFFIXES = (".py", ".yaml", ".yml", ".json")
_COMPILED_HEADS = (
    re.compile(rb"# An Airflow DAG written by conveyor-airflow\."),
    re.compile(rb"# PIPELINE DEFINITION\n(?:#[^\n]*\n){0,4}# conveyor deployment: [0-9a-f]{32}\n"),
    re.compile(
        rb'\{"deployment_id":"[0-9a-f]{32}","deployment_name":"(?:[^"\\\n]|\\.)*",'
        rb'"entrypoint":"conveyor_prefect\.(?:_named\.p_[0-9a-f]+|_flow\.run_deployment)"'
    ),
)
_HEAD_BYTES = 4096
GIT_TIMEOUT = 60


@dataclass
class SourceFiles:
    """The files of a source root that go into an image."""

    root: Path
    files: list[tuple[str, Path]]
    """``(relative name, path)``, sorted."""
    git: bool
    """Chosen by git (tracked files), not by walking the folder."""
    untracked_python: list[str] = field(default_factory=list)
    """Untracked, not git-ignored ``*.py`` files left out (in a git checkout): likely a missing ``git add``."""


def code_files(root: Path, settings: DockerSettings) -> SourceFiles:
    """The user's code under ``root`` that goes into the image (see the module docstring).

    Raises:
        ConfigError: ``settings.dockerignore`` names a file that does not exist, or an ignore file
            holds a malformed pattern.
    """
    root = Path(os.path.realpath(root))
    rules = _dockerignore(root, settings) + IgnoreRules.read(root / CONVEYORIGNORE)
    tracked = _git_lines(root, "--cached", "--recurse-submodules")
    if tracked:
        files = _select(root, rules, sorted(set(tracked)))
        untracked = _git_lines(root, "--others", "--exclude-standard", "--", "*.py") or []
        left_out = [rel for rel, _ in _select(root, rules, sorted(set(untracked)))]
        return SourceFiles(root=root, files=files, git=True, untracked_python=left_out)
    return SourceFiles(root=root, files=_select(root, rules, _walk(root, rules)), git=False)


def folder_files(root: Path) -> list[tuple[str, Path]]:
    """Every file of a folder that Docker would send as a build context (its ``.dockerignore`` honoured).

    Raises:
        ConfigError: the .dockerignore holds a malformed pattern.
    """
    root = Path(os.path.realpath(root))
    rules = IgnoreRules.read(root / DOCKERIGNORE)
    return _select(root, rules, _walk(root, rules), skip_compiled=False)


def _dockerignore(root: Path, settings: DockerSettings) -> IgnoreRules:
    if not settings.dockerignore:
        return IgnoreRules.read(root / DOCKERIGNORE)
    path = Path(settings.dockerignore).expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"dockerignore file {path} does not exist", "fix DockerSettings(dockerignore=...)")
    return IgnoreRules.read(path)


def _git_lines(root: Path, *args: str) -> list[str] | None:
    """``git ls-files -z ARGS`` run in ``root``: paths relative to it; None outside a checkout or without git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", *args],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [os.fsdecode(name) for name in out.stdout.split(b"\0") if name]


def _walk(root: Path, rules: IgnoreRules) -> list[str]:
    """Relative names of the folder's entries that are not folders (symbolic links to folders included)."""
    out: list[str] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            entries = list(os.scandir(root / prefix if prefix else root))
        except OSError:
            continue  # unreadable: Docker would fail on it too; the user's code is elsewhere
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if entry.name in NEVER_COPIED:
                    continue
                if rules.excludes(rel) and not rules.has_exceptions:
                    continue  # nothing below can be put back
                pending.append(rel + "/")
            else:
                out.append(rel)
    return sorted(out)


def _select(root: Path, rules: IgnoreRules, names: list[str], *, skip_compiled: bool = True) -> list[tuple[str, Path]]:
    out = []
    for rel in names:
        parts = rel.split("/")
        if "" in parts or "." in parts or ".." in parts:
            continue  # not a plain relative path: never from git or the walk, refused all the same
        if any(p in NEVER_COPIED for p in parts) or rel.endswith(_NEVER_SUFFIXES):
            continue
        if rules.excludes(rel):
            continue
        path = root.joinpath(*parts)
        if os.path.realpath(path.parent) != str(path.parent):
            continue  # a folder on the way is a symbolic link: what is behind it may be outside the root
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue  # tracked but deleted here, or gone since it was listed
        if stat.S_ISREG(mode):
            if skip_compiled and _is_compiled_output(path):
                continue
        elif not stat.S_ISLNK(mode):
            continue  # a FIFO, socket or device: reading it could block, and it is no code
        out.append((rel, path))
    return sorted(out)


def _is_compiled_output(path: Path) -> bool:
    """Whether a file is a DAG file, spec or deployment file written by one of conveyor's orchestrators."""
    if not path.name.endswith(_COMPILED_SUFFIXES):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False
    return any(sig.match(head) for sig in _COMPILED_HEADS)
