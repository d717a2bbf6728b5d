"""The build context of an image: its plan, its Dockerfile, its content hash and the tar file sent to Docker.

Layers are ordered from what changes least to what changes most, so that a
code-only change rebuilds only the last layer::

    FROM <parent image id>
    RUN apt-get install ...                  (apt_packages)
    COPY + RUN pip install --no-index ...    (third-party wheels, prepared here)
    COPY + RUN pip install --no-deps ...     (conveyor distributions, as wheels)
    ENV ...                                  (environment)
    COPY ...                                 (extra_files)
    COPY app /app                            (the user's code: see conveyor_docker._source)

The tag is a hash of every input: the parent's image id, the apt packages,
the pinned requirement set, the conveyor wheels' sources, the environment,
and the names, modes and bytes of every copied file (a symbolic link by its
target's name: links are copied as links).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import Distribution
from pathlib import Path
from typing import IO, Any

from conveyor.exceptions import ConfigError
from conveyor_docker._settings import DockerSettings

BUILD_FORMAT = 1
"""Bumped whenever the Dockerfile template changes, so old tags are not reused."""

APP_DIR = "/app"
STAGING = "/tmp/conveyor-build"
_FIXED_MTIME = 1_000_000_000  # files in the context get one mtime, so layers depend on bytes only


@dataclass
class ImagePlan:
    """Everything one image is made of, known before anything is built."""

    repository: str
    parent: str
    parent_id: str
    settings: DockerSettings
    pinned: dict[str, Distribution] = field(default_factory=dict)
    """Third-party distributions installed here, repacked at their installed version."""
    pip_requirements: list[str] = field(default_factory=list)
    """Requirements not satisfied here, prepared with ``pip wheel``."""
    conveyor: dict[str, Distribution] = field(default_factory=dict)
    """conveyor's own distributions, installed without dependencies in their own layer."""
    code_root: Path | None = None
    code_files: list[tuple[str, Path]] = field(default_factory=list)
    """``(relative name, path)`` of the user's code (:func:`conveyor_docker._source.code_files`)."""
    extra_files: list[tuple[str, list[tuple[str, Path]]]] = field(default_factory=list)
    """``(path in the image, [(relative name, file here)])``."""
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """The content hash of all inputs."""
        text = json.dumps(self.inputs, sort_keys=True, separators=(",", ":")) + self.dockerfile()
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def name(self) -> str:
        """``repository:tag``."""
        return f"{self.repository}:{self.tag}"

    def requirement_lines(self) -> list[str]:
        """What the image's third-party layer installs."""
        pins = sorted(f"{d.metadata['Name']}=={d.version}" for d in self.pinned.values())
        return pins + sorted(self.pip_requirements)

    def dockerfile(self) -> str:
        """The Dockerfile of the image (the build context is made by :func:`write_context`)."""
        s = self.settings
        pip = "PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore python -m pip install --no-index"
        lines = [f"FROM {self.parent_id}"]
        if s.apt_packages:
            pkgs = " ".join(sorted(set(s.apt_packages)))
            lines.append(
                "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                f"{pkgs} && rm -rf /var/lib/apt/lists/*"
            )
        if self.pinned or self.pip_requirements:
            lines += [
                f"COPY third-party {STAGING}/third-party",
                f"RUN {pip} --find-links {STAGING}/third-party -r {STAGING}/third-party/requirements.txt"
                f" && rm -rf {STAGING}/third-party",
            ]
        lines += [
            f"COPY conveyor {STAGING}/conveyor",
            f"RUN {pip} --no-deps --force-reinstall {STAGING}/conveyor/*.whl"
            f' && python -c "import conveyor.runtime" && rm -rf {STAGING}',
        ]
        env = {**s.environment, "CONVEYOR_SOURCE_ROOT": APP_DIR, "PYTHONUNBUFFERED": "1"}
        lines.append("ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(env.items())))
        for i, (dest, _) in enumerate(self.extra_files):
            lines.append(f"COPY extra/{i} {json.dumps(dest)}")
        if s.copy_source and self.code_root is not None:
            lines.append(f"COPY app {APP_DIR}")
        lines.append(f"WORKDIR {APP_DIR}")
        return "\n".join(lines) + "\n"


def extra_files_of(path: Path) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of an ``extra_files`` source: a file, or the files of a folder.

    Raises:
        ConfigError: the path does not exist.
    """
    if path.is_file():
        return [("", path)]  # a single file: copied to the target path itself
    if path.is_dir():
        return sorted(
            (p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    raise ConfigError(f"extra file {path} does not exist", "fix DockerSettings(extra_files=...)")


def files_hash(files: list[tuple[str, Path]], *, follow_symlinks: bool = False) -> str:
    """Hash of the names, modes and bytes of files; a symbolic link by its target's name, unless followed."""
    digest = hashlib.sha256()
    for rel, path in files:
        digest.update(os.fsencode(rel) + b"\0")
        if not follow_symlinks and path.is_symlink():
            digest.update(b"l" + hashlib.sha256(os.fsencode(os.readlink(path))).digest())
        else:
            digest.update(b"x" if _executable(path) else b"-")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def repository_name(registry_uri: str, settings: DockerSettings, pipeline: str) -> str:
    """``<registry uri>/<target repository>``, lower-cased to what registries accept."""
    name = settings.target_repository or f"conveyor-{pipeline}"
    name = re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("-./")
    return f"{registry_uri.rstrip('/')}/{name}"


# -- the tar file ---------------------------------------------------------------
def write_context(plan: ImagePlan, third: list[Path], own: list[Path]) -> IO[bytes]:
    """The build context as a tar file: Dockerfile, wheels, extra files and code."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    with tarfile.open(fileobj=out, mode="w") as tar:
        add_bytes(tar, "Dockerfile", plan.dockerfile().encode())
        if third:
            add_bytes(tar, "third-party/requirements.txt", "".join(f"{r}\n" for r in plan.requirement_lines()).encode())
            for wheel in third:
                add_file(tar, f"third-party/{wheel.name}", wheel)
        for wheel in own:
            add_file(tar, f"conveyor/{wheel.name}", wheel)
        for i, (_dest, files) in enumerate(plan.extra_files):
            for rel, path in files:
                # Extra files are paths the user named on this machine: links there are followed.
                add_file(tar, f"extra/{i}/{rel}" if rel else f"extra/{i}", path, follow_symlinks=True)
        if plan.settings.copy_source:
            for rel, path in plan.code_files:
                add_file(tar, f"app/{rel}", path)
    out.seek(0)
    return out


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a file of the given bytes to a build context."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _FIXED_MTIME
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_file(tar: tarfile.TarFile, name: str, path: Path, *, follow_symlinks: bool = False) -> None:
    """Add a file to a build context: its bytes and whether it is executable; a symbolic link as a link, unless followed."""
    info = tarfile.TarInfo(name)
    info.mtime = _FIXED_MTIME
    if not follow_symlinks and path.is_symlink():
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        tar.addfile(info)
        return
    info.size = path.stat().st_size
    info.mode = 0o755 if _executable(path) else 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _executable(path: Path) -> bool:
    return bool(os.stat(path).st_mode & stat.S_IXUSR)
