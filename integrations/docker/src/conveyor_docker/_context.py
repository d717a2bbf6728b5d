"""What goes into an image: the plan, its content hash, its Dockerfile and build context.

Layers are ordered from what changes least to what changes most, so that a
code-only change rebuilds only the last layer::

    FROM <parent image id>
    RUN apt-get install ...                  (apt_packages)
    COPY + RUN pip install --no-index ...    (third-party wheels, prepared here)
    COPY + RUN pip install --no-deps ...     (conveyor distributions, as wheels)
    ENV ...                                  (environment)
    COPY ...                                 (extra_files)
    COPY . /app                              (the source root, honouring .dockerignore)

The tag is a hash of every input: the parent's image id, the apt packages,
the pinned requirement set, the conveyor wheels' sources, the environment,
and the bytes of every copied file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import Distribution, distributions, entry_points, packages_distributions
from pathlib import Path
from typing import IO, Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from conveyor.exceptions import ConfigError
from conveyor_docker._settings import DockerSettings
from conveyor_docker._wheels import WheelCache, editable_project, installed_key, tree_hash

BUILD_FORMAT = 1
"""Bumped whenever the Dockerfile template changes, so old tags are not reused."""

APP_DIR = "/app"
STAGING = "/tmp/conveyor-build"
# Never part of the user's code in the image, whatever .dockerignore says.
DEFAULT_EXCLUDES = [
    ".conveyor",
    ".git",
    "**/__pycache__",
    "**/*.pyc",
    ".venv",
    ".nox",
    ".tox",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
]
# Database drivers that need a companion distribution to work without system libraries.
_DRIVER_COMPANIONS = {"psycopg": ("psycopg-binary", "psycopg-c", "psycopg-pool")}
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


# -- planning ------------------------------------------------------------------------
def _installed() -> dict[str, Distribution]:
    out: dict[str, Distribution] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist)  # the first on sys.path wins, as for imports
    return out


def _is_conveyor(name: str) -> bool:
    return name == "conveyor" or name.startswith("conveyor-")


def _parse(req: str, where: str) -> Requirement:
    try:
        return Requirement(req)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: {req!r} is not a requirement: {exc}") from None


def marker_environment(python_version: Sequence[int] | None = None) -> dict[str, str]:
    """The environment requirement markers are evaluated in: this machine's, with the image's Python."""
    env = dict(default_environment())
    if python_version is not None:
        full = ".".join(str(n) for n in python_version[:3])
        env.update(python_full_version=full, python_version=".".join(str(n) for n in python_version[:2]))
        if env.get("implementation_name") == "cpython":
            env["implementation_version"] = full
    return env


class Resolver:
    """Resolves requirements against what is installed here, pinning installed versions.

    Args:
        python_version: the image's Python (``major, minor, micro``); markers
            such as ``python_full_version < "3.11.3"`` are evaluated for it.
    """

    def __init__(self, python_version: Sequence[int] | None = None) -> None:
        self.environment = marker_environment(python_version)
        self.installed = _installed()
        self.pinned: dict[str, Distribution] = {}
        self.conveyor: dict[str, Distribution] = {}
        self.unresolved: list[str] = []
        self._extras: dict[str, set[str]] = {}

    def add_conveyor(self, name: str) -> None:
        """Add a conveyor distribution (its dependencies are resolved too)."""
        self.add(Requirement(name))

    def add(self, req: Requirement, *, original: str | None = None) -> None:
        """Add a requirement and its installed dependencies."""
        if req.marker is not None and not req.marker.evaluate({**self.environment, "extra": ""}):
            return  # not for the image's platform or Python
        pending = [(req, original)]
        while pending:
            req, original = pending.pop()
            name = canonicalize_name(req.name)
            dist = self.installed.get(name)
            satisfied = (
                dist is not None
                and req.url is None
                and (not req.specifier or req.specifier.contains(dist.version, prereleases=True))
            )
            if not satisfied:
                text = original or str(req)
                if text not in self.unresolved:
                    self.unresolved.append(text)
                continue
            assert dist is not None
            target = self.conveyor if _is_conveyor(name) else self.pinned
            known = self._extras.get(name)
            new = set(req.extras) - (known or set())
            if known is not None and not new:
                continue
            target[name] = dist
            extras = self._extras.setdefault(name, set())
            extras.update(req.extras)
            for line in dist.requires or ():
                dep = Requirement(line)
                if dep.marker is not None and not any(
                    dep.marker.evaluate({**self.environment, "extra": e}) for e in {"", *extras}
                ):
                    continue
                dep.marker = None
                pending.append((dep, None))
        for name in self.conveyor:
            self.pinned.pop(name, None)


def stack_distributions(stack: Any) -> list[str]:
    """conveyor distributions that provide the flavors of a stack's components."""
    from conveyor.constants import FLAVORS_GROUP

    wanted = {f"{c.type}.{c.flavor}" for c in stack.ir}
    names = {"conveyor"}
    for ep in entry_points(group=FLAVORS_GROUP):
        if ep.name in wanted and ep.dist is not None:
            names.add(ep.dist.metadata["Name"])
    return sorted(names)


def materializer_distributions() -> list[str]:
    """Plugin distributions whose materializers handle types of modules imported here."""
    from conveyor.constants import MATERIALIZERS_GROUP

    names = set()
    for ep in entry_points(group=MATERIALIZERS_GROUP):
        top = ep.name.split(".", 1)[0]
        if ep.dist is not None and top in sys.modules and top != "builtins":
            name = ep.dist.metadata["Name"]
            if canonicalize_name(name) != "conveyor":
                names.add(name)
    return sorted(names)


def store_requirements(store_url: Any, artifact_path: str) -> list[str]:
    """Distributions the step process needs to reach the stores: the database driver, the fsspec filesystem."""
    import sqlalchemy as sa

    from conveyor.stores import is_server_url

    top_levels: list[str] = []
    if is_server_url(str(store_url)):
        pass  # a conveyor server: steps speak HTTP with the standard library, no driver
    elif (store_url := sa.make_url(store_url)).get_backend_name() != "sqlite":
        try:
            dbapi = store_url.get_dialect().import_dbapi()
            top_levels.append(dbapi.__name__.split(".", 1)[0])
        except ImportError as exc:
            raise ConfigError(
                f"the metadata store's driver is not installed here: {exc}",
                'install it (pip install "conveyor[mysql]" or "conveyor[postgres]")',
            ) from None
    if "://" in artifact_path:
        protocol = artifact_path.split("://", 1)[0]
        from fsspec.registry import known_implementations

        cls = known_implementations.get(protocol, {}).get("class", "")
        if cls and not cls.startswith("fsspec."):
            top_levels.append(cls.split(".", 1)[0])
    owners = packages_distributions()
    out: list[str] = []
    for top in top_levels:
        for name in owners.get(top, [top]):
            out.append(name)
            for companion in _DRIVER_COMPANIONS.get(canonicalize_name(name), ()):
                if companion in {canonicalize_name(n) for n in _installed()}:
                    out.append(companion)
    return out


def user_requirements(settings: DockerSettings, base: Path | None) -> list[str]:
    """The requirement strings of the settings (a list, or the lines of a requirements file)."""
    reqs = settings.requirements
    if reqs is None:
        return []
    if isinstance(reqs, list):
        return [r.strip() for r in reqs if r.strip()]
    path = Path(reqs)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read requirements file {path}: {exc.strerror}",
            "give DockerSettings(requirements=...) a list or an existing file",
        ) from None
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ConfigError(
                f"requirements file {path}: options such as {line.split()[0]!r} are not supported",
                "list plain requirements, one a line",
            )
        lines.append(line)
    return lines


def code_files(root: Path, settings: DockerSettings) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of the source root's files that go into the image."""
    from docker.utils.build import PatternMatcher

    patterns = list(DEFAULT_EXCLUDES)
    ignore = Path(settings.dockerignore) if settings.dockerignore else root / ".dockerignore"
    if settings.dockerignore and not ignore.is_absolute():
        ignore = root / ignore
    if ignore.is_file():
        patterns += [
            line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")
        ]
    elif settings.dockerignore:
        raise ConfigError(f"dockerignore file {ignore} does not exist")
    out = []
    for rel in PatternMatcher(patterns).walk(str(root)):
        path = root / rel
        if path.is_file():
            out.append((Path(rel).as_posix(), path))
    return sorted(out)


def _files_of(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [("", path)]  # a single file: copied to the target path itself
    if path.is_dir():
        return sorted(
            (p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    raise ConfigError(f"extra file {path} does not exist", "fix DockerSettings(extra_files=...)")


def files_hash(files: list[tuple[str, Path]]) -> str:
    """Hash of names, modes and bytes of files."""
    digest = hashlib.sha256()
    for rel, path in files:
        digest.update(rel.encode() + b"\0" + (b"x" if os.access(path, os.X_OK) else b"-"))
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def repository_name(registry_uri: str, settings: DockerSettings, pipeline: str) -> str:
    """``<registry uri>/<target repository>``, lower-cased to what registries accept."""
    name = settings.target_repository or f"conveyor-{pipeline}"
    name = re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("-./")
    return f"{registry_uri.rstrip('/')}/{name}"


def conveyor_source_key(dist: Distribution) -> dict[str, str]:
    """What a conveyor distribution's wheel is made of: its checkout's tree hash, or its installed files."""
    project = editable_project(dist)
    if project is not None:
        return {"name": dist.metadata["Name"], "version": dist.version, "tree": tree_hash(project)}
    return {"name": dist.metadata["Name"], "version": dist.version, "installed": installed_key(dist)}


# -- the build context ---------------------------------------------------------------
def prepare_wheels(plan: ImagePlan, cache: WheelCache) -> tuple[list[Path], list[Path]]:
    """``(third-party wheels, conveyor wheels)`` of a plan, made or taken from the cache."""
    third: dict[str, Path] = {}
    for dist in plan.pinned.values():
        wheel = cache.repack(dist)
        third[wheel.name] = wheel
    if plan.pip_requirements:
        pins = [f"{d.metadata['Name']}=={d.version}" for d in plan.pinned.values()]
        for wheel in cache.pip_wheels(plan.pip_requirements, sorted(pins), sorted({w.parent for w in third.values()})):
            third.setdefault(wheel.name, wheel)
    own = []
    for dist in plan.conveyor.values():
        project = editable_project(dist)
        own.append(cache.build_project(project, tree_hash(project)) if project is not None else cache.repack(dist))
    return sorted(third.values()), sorted(own)


def write_context(plan: ImagePlan, third: list[Path], own: list[Path]) -> IO[bytes]:
    """The build context as a tar file: Dockerfile, wheels, extra files and code."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    with tarfile.open(fileobj=out, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", plan.dockerfile().encode())
        if third:
            _add_bytes(
                tar, "third-party/requirements.txt", "".join(f"{r}\n" for r in plan.requirement_lines()).encode()
            )
            for wheel in third:
                _add_file(tar, f"third-party/{wheel.name}", wheel)
        for wheel in own:
            _add_file(tar, f"conveyor/{wheel.name}", wheel)
        for i, (_dest, files) in enumerate(plan.extra_files):
            for rel, path in files:
                _add_file(tar, f"extra/{i}/{rel}" if rel else f"extra/{i}", path)
        if plan.settings.copy_source:
            for rel, path in plan.code_files:
                _add_file(tar, f"app/{rel}", path)
    out.seek(0)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _FIXED_MTIME
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mtime = _FIXED_MTIME
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)
