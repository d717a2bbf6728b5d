"""Wheels for offline installs inside an image, prepared on this machine.

Three sources, cheapest first:

* a distribution installed here (not editable) is repacked from its
  installed files into a wheel, so the image gets exactly the version that
  runs here, with no network;
* a distribution installed editable from a checkout (``pip install -e core``)
  is built into a wheel from that checkout;
* any other requirement is prepared with ``pip wheel`` (which honours the
  ``PIP_*`` settings of this machine, ``PIP_NO_INDEX`` included).

Every wheel lands in a cache folder keyed by what it was made from, so an
unchanged input is never prepared twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib.metadata import Distribution
from pathlib import Path

from conveyor.exceptions import ConfigError

# Files of an installed .dist-info that an installer writes, not the wheel.
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
# Folders of a checkout that never go into its wheel.
_SKIP_DIRS = {"tests", "__pycache__", "build", "dist", ".git", ".nox", ".tox", ".venv", "node_modules"}
PIP_TIMEOUT = 900


def default_cache_dir() -> Path:
    """``$CONVEYOR_CACHE_DIR/docker``, ``$XDG_CACHE_HOME/conveyor/docker`` or ``~/.cache/conveyor/docker``."""
    root = os.environ.get("CONVEYOR_CACHE_DIR")
    if root:
        return Path(root) / "docker"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "conveyor" / "docker"


def editable_project(dist: Distribution) -> Path | None:
    """The checkout an editable install points at, or None."""
    try:
        raw = dist.read_text("direct_url.json")
    except OSError:
        raw = None
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    if not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(url).path))
    return path if (path / "pyproject.toml").is_file() or (path / "setup.py").is_file() else None


def tree_hash(root: Path) -> str:
    """Content hash of a checkout's files (tests, caches and build output left out)."""
    digest = hashlib.sha256()
    for path in sorted(_tree_files(root)):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")]
        out.extend(Path(folder) / f for f in files if not f.endswith((".pyc", ".pyo")))
    return out


def installed_key(dist: Distribution) -> str:
    """What identifies an installed distribution's files: name, version and its RECORD."""
    record = dist.read_text("RECORD") or ""
    return hashlib.sha256(f"{dist.metadata['Name']}=={dist.version}\n{record}".encode()).hexdigest()


@dataclass(frozen=True)
class WheelCache:
    """The folder wheels are prepared in.

    Args:
        root: the cache folder (created on use).
    """

    root: Path

    def _dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:32]

    # -- installed distributions -----------------------------------------------------
    def repack(self, dist: Distribution) -> Path:
        """A wheel of an installed (not editable) distribution, from its installed files.

        Raises:
            ConfigError: the distribution's files cannot make a wheel (no WHEEL or RECORD).
        """
        folder = self._dir("installed", installed_key(dist))
        found = list(folder.glob("*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
        wheel_meta = dist.read_text("WHEEL")
        if not wheel_meta or dist.files is None:
            raise ConfigError(
                f"{dist.metadata['Name']} {dist.version} is installed without wheel metadata and cannot be repacked",
                "list it in DockerSettings(requirements=[...]) so that pip prepares it",
            )
        info_dir = Path(str(dist._path))  # type: ignore[attr-defined]  # the .dist-info folder
        namever = info_dir.name[: -len(".dist-info")]
        name = f"{namever}-{_tag_suffix(wheel_meta)}.whl"
        tmp = Path(tempfile.mkdtemp(prefix=".repack-", dir=_ensure(folder.parent)))
        try:
            self._write_repacked(dist, info_dir, namever, tmp / name)
            _publish(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder / name

    @staticmethod
    def _write_repacked(dist: Distribution, info_dir: Path, namever: str, target: Path) -> None:
        from wheel.wheelfile import WheelFile

        site = info_dir.parent
        scripts = Path(sysconfig.get_path("scripts")).resolve()
        data_root = Path(sysconfig.get_path("data")).resolve()
        generated = {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
        entries: list[tuple[Path, str]] = []
        for file in dist.files or ():
            rel = file.as_posix()
            if "__pycache__" in file.parts or rel.endswith((".pyc", ".pyo")):
                continue
            if file.parts[0] == info_dir.name and file.name in _INSTALLER_FILES:
                continue
            path = Path(os.path.normpath(site / rel))
            if not path.is_file():
                continue
            if not rel.startswith(".."):
                entries.append((path, rel))
            elif path.parent == scripts:
                if path.name not in generated:  # entry-point wrappers are written again by pip
                    entries.append((path, f"{namever}.data/scripts/{path.name}"))
            elif data_root in path.parents:
                entries.append((path, f"{namever}.data/data/{path.relative_to(data_root).as_posix()}"))
        # dist-info last, as installers expect.
        entries.sort(key=lambda e: (e[1].startswith(info_dir.name + "/"), e[1]))
        with WheelFile(target, "w") as wf:
            for path, arcname in entries:
                wf.write(str(path), arcname)

    # -- checkouts -------------------------------------------------------------------
    def build_project(self, project: Path, key: str) -> Path:
        """A wheel built from a checkout (cached under ``key``, its tree hash).

        Raises:
            ConfigError: the build failed; the message ends with pip's output.
        """
        folder = self._dir("projects", key)
        found = list(folder.glob("*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=_ensure(folder.parent)))
        try:
            base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp)]
            # Without isolation the build backend installed here is used and no network is needed.
            out = _pip([*base, "--no-build-isolation", str(project)])
            if out.returncode != 0:
                out = _pip([*base, str(project)])
            if out.returncode != 0:
                raise ConfigError(f"cannot build a wheel of {project}:\n{_tail(out.stdout + out.stderr)}")
            _publish(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return next(folder.glob("*.whl"))

    # -- anything else ---------------------------------------------------------------
    def pip_wheels(self, requirements: list[str], constraints: list[str], find_links: list[Path]) -> list[Path]:
        """Wheels of requirements and their dependencies, prepared with ``pip wheel``.

        Args:
            requirements: requirement strings (``name>=1``, a URL, a path).
            constraints: ``name==version`` pins that pip must respect.
            find_links: folders of wheels pip may take instead of downloading.

        Raises:
            ConfigError: a requirement cannot be prepared; the message ends with pip's output.
        """
        key = hashlib.sha256(json.dumps([requirements, constraints]).encode()).hexdigest()
        folder = self._dir("pip", key)
        if (folder / ".complete").is_file():
            return sorted(folder.glob("*.whl"))
        tmp = Path(tempfile.mkdtemp(prefix=".pip-", dir=_ensure(folder.parent)))
        try:
            (tmp / "constraints.txt").write_text("".join(f"{c}\n" for c in constraints))
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--wheel-dir",
                str(tmp),
                "--constraint",
                str(tmp / "constraints.txt"),
            ]
            for link in find_links:
                cmd += ["--find-links", str(link)]
            out = _pip([*cmd, *requirements])
            if out.returncode != 0:
                raise ConfigError(
                    f"requirements {', '.join(requirements)} cannot be prepared for the image:\n"
                    f"{_tail(out.stdout + out.stderr)}",
                    "fix DockerSettings(requirements=...) or make the package reachable for pip here",
                )
            (tmp / "constraints.txt").unlink()
            (tmp / ".complete").write_text("")
            _publish(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return sorted(folder.glob("*.whl"))


def _tag_suffix(wheel_meta: str) -> str:
    """``py-abi-platform`` of a wheel file name from the ``Tag:`` lines of its WHEEL file."""
    parts: list[list[str]] = [[], [], []]
    for line in wheel_meta.splitlines():
        if line.startswith("Tag:"):
            for i, value in enumerate(line.split(":", 1)[1].strip().split("-", 2)):
                if value not in parts[i]:
                    parts[i].append(value)
    if not all(parts):
        return "py3-none-any"
    return "-".join(".".join(p) for p in parts)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(tmp: Path, folder: Path) -> None:
    """Move a finished folder into place (another process may have won the race)."""
    try:
        os.rename(tmp, folder)
    except OSError:
        if not folder.is_dir():
            raise
    else:
        tmp.mkdir()  # the caller removes it


def _pip(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env, check=False)


def _tail(text: str, lines: int = 15) -> str:
    kept = [re.sub(r"\s+$", "", line) for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept)
