"""What an image installs: conveyor's distributions, the stores' drivers, the user's requirements.

Requirements are resolved against what is installed on this machine: an
installed distribution that satisfies one is pinned at its installed version
(and repacked into a wheel), its dependencies follow; anything else is left to
``pip wheel``. Markers are evaluated for the image's Python, so a dependency
only the image needs is prepared too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import Distribution, distributions, entry_points, packages_distributions
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from conveyor.exceptions import ConfigError
from conveyor_docker._settings import DockerSettings
from conveyor_docker._wheels import WheelCache, editable_project, installed_key, tree_hash

if TYPE_CHECKING:
    from conveyor_docker._context import ImagePlan

# Database drivers that need a companion distribution to work without system libraries.
_DRIVER_COMPANIONS = {"psycopg": ("psycopg-binary", "psycopg-c", "psycopg-pool")}


def installed_distributions() -> dict[str, Distribution]:
    """The distributions installed here, by canonical name."""
    out: dict[str, Distribution] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist)  # the first on sys.path wins, as for imports
    return out


def _is_conveyor(name: str) -> bool:
    return name == "conveyor" or name.startswith("conveyor-")


def parse_requirement(req: str, where: str) -> Requirement:
    """A requirement string parsed.

    Raises:
        ConfigError: not a requirement (``where`` says whose).
    """
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
        self.installed = installed_distributions()
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
    # The entry point group's name is documented but not yet a public constant of conveyor.
    from conveyor.constants import FLAVORS_GROUP

    wanted = {f"{c.type}.{c.flavor}" for c in stack.ir}
    names = {"conveyor"}
    for ep in entry_points(group=FLAVORS_GROUP):
        if ep.name in wanted and ep.dist is not None:
            names.add(ep.dist.metadata["Name"])
    return sorted(names)


def materializer_distributions() -> list[str]:
    """Plugin distributions whose materializers handle types of modules imported here."""
    # As for FLAVORS_GROUP: documented, not yet a public constant.
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
                'install it (in the root folder of a conveyor clone: pip install "./core[mysql]", or "./core[postgres]")',
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
                if companion in {canonicalize_name(n) for n in installed_distributions()}:
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


def conveyor_source_key(dist: Distribution) -> dict[str, str]:
    """What a conveyor distribution's wheel is made of: its checkout's tree hash, or its installed files."""
    project = editable_project(dist)
    if project is not None:
        return {"name": dist.metadata["Name"], "version": dist.version, "tree": tree_hash(project)}
    return {"name": dist.metadata["Name"], "version": dist.version, "installed": installed_key(dist)}


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
