"""The ``docker`` image builder: builds (or reuses) a deployment's images and pushes them."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError
from conveyor.stack import Capability, ComponentType, StackComponent
from conveyor_docker._client import BuildFailedError, EventLog, docker_client
from conveyor_docker._context import (
    BUILD_FORMAT,
    ImagePlan,
    add_bytes,
    add_file,
    extra_files_of,
    files_hash,
    repository_name,
    write_context,
)
from conveyor_docker._requirements import (
    Resolver,
    conveyor_source_key,
    materializer_distributions,
    parse_requirement,
    prepare_wheels,
    stack_distributions,
    store_requirements,
    user_requirements,
)
from conveyor_docker._settings import DockerSettings, settings_for
from conveyor_docker._source import SourceFiles, code_files, folder_files
from conveyor_docker._wheels import WheelCache, default_cache_dir

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.orchestrators import LaunchContext
    from conveyor_docker._registry import DefaultContainerRegistry

_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "FTP_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "ftp_proxy",
)
_PROBE = (
    "import json, sys, importlib.util as u; "
    "print(json.dumps({'version': list(sys.version_info[:3]), 'pip': u.find_spec('pip') is not None}))"
)
# Distributions that belong to the installer, not to what steps need.
_NOT_REPLICATED = {"pip", "setuptools", "wheel", "distribute"}


@dataclass(frozen=True)
class ImageBuild:
    """What happened to one image of a deployment."""

    name: str
    """``repository:tag``."""
    ref: str
    """``repository@sha256:...``, what steps run in."""
    action: str
    """``reused`` (nothing done), ``pushed`` (existed here, pushed) or ``built`` (built and pushed)."""
    seconds: float


class DockerImageBuilder(StackComponent):
    """Builds a deployment's images with the local Docker daemon and pushes them to the stack's registry."""

    builds: list[ImageBuild]

    def __init__(self, name: str, config: Any, flavor: Any) -> None:
        super().__init__(name, config, flavor)
        self.builds = []

    @property
    def cache(self) -> WheelCache:
        """Where wheels for images are prepared."""
        return WheelCache(Path(self.config.cache_dir).expanduser() if self.config.cache_dir else default_cache_dir())

    def default_parent(self) -> str:
        """The parent image when settings name none."""
        return self.config.parent_image or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"

    def build_images(self, deployment: Deployment, ctx: LaunchContext) -> dict[str, str]:
        """Build, reuse and push the images a deployment's steps run in.

        Returns ``{"" or step id: "repository@sha256:..."}``; a step gets its
        own image only when its docker settings differ from the pipeline's.

        Raises:
            StackError: no Docker daemon, or the registry cannot be used.
            ConfigError: bad docker settings, a missing parent image, a requirement that cannot be prepared.
            BuildFailedError: the build or the push failed (with the tail of docker's log).
        """
        client = docker_client()
        registry = ctx.stack.component(ComponentType.CONTAINER_REGISTRY)
        pipeline = deployment.pipeline
        orchestrator = ctx.stack.flavor(ComponentType.ORCHESTRATOR)
        everywhere = Capability.CONTAINER_IMAGE in orchestrator.capabilities
        base = settings_for(pipeline)
        wanted: dict[str, DockerSettings] = {}
        for step in pipeline.steps:
            if not everywhere and step.settings.step_operator is None:
                continue
            own = settings_for(pipeline, step)
            wanted["" if own == base else step.id] = own
        planner = _Planner(self, client, deployment, ctx, registry.uri)
        images: dict[str, str] = {}
        done: dict[str, str] = {}
        for key in sorted(wanted):
            plan = planner.plan(wanted[key], key or None)
            if plan.name not in done:
                done[plan.name] = self._provide(client, registry, plan)
            images[key] = done[plan.name]
        return images

    # -- one image -------------------------------------------------------------------
    def _provide(self, client: Any, registry: DefaultContainerRegistry, plan: ImagePlan) -> str:
        import docker

        started = time.perf_counter()
        try:
            local = client.images.get(plan.name)
        except docker.errors.ImageNotFound:
            local = None
        remote = registry.remote_digest(client, plan.name)
        action = "reused"
        if local is None and remote is None:
            self._build(client, plan)
            remote, action = registry.push(client, plan.repository, plan.tag), "built"
        elif local is not None and (
            remote is None or f"{plan.repository}@{remote}" not in local.attrs.get("RepoDigests", [])
        ):
            remote, action = registry.push(client, plan.repository, plan.tag), "pushed"
        ref = f"{plan.repository}@{remote}"
        record = ImageBuild(name=plan.name, ref=ref, action=action, seconds=time.perf_counter() - started)
        self.builds.append(record)
        verb = {"reused": "reused", "pushed": "pushed", "built": "built and pushed"}[action]
        print(f"conveyor: image {plan.name} {verb} ({record.seconds:.1f} s)", file=sys.stderr)
        return ref

    def _build(self, client: Any, plan: ImagePlan) -> None:
        import docker
        import requests

        third, own = prepare_wheels(plan, self.cache)
        log = EventLog()
        with write_context(plan, third, own) as context:
            try:
                log.feed(
                    client.api.build(
                        fileobj=context,
                        custom_context=True,
                        tag=plan.name,
                        rm=True,
                        forcerm=True,
                        pull=False,
                        network_mode="host",
                        labels=plan.labels,
                        buildargs={k: os.environ[k] for k in _PROXY_VARS if k in os.environ},
                        decode=True,
                    )
                )
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                log.error = log.error or str(exc)
        if log.error:
            _remove_leftovers(client, log, plan.parent_id)
            raise BuildFailedError(
                f"building image {plan.name} failed: {log.error.splitlines()[0]}",
                "fix the pipeline's DockerSettings (parent_image, apt_packages, requirements) and run again",
                log_tail=log.tail(),
            )


class _Planner:
    """Makes the :class:`ImagePlan` of each image of one deployment (shared look-ups done once)."""

    def __init__(
        self, builder: DockerImageBuilder, client: Any, deployment: Deployment, ctx: LaunchContext, registry_uri: str
    ) -> None:
        self.builder = builder
        self.client = client
        self.deployment = deployment
        self.ctx = ctx
        self.registry_uri = registry_uri
        self.source_root = Path(ctx.source_root).resolve() if ctx.source_root else Path.cwd()
        self._code: dict[str | None, SourceFiles] = {}
        self._conveyor_keys: dict[str, dict[str, str]] = {}

    def plan(self, settings: DockerSettings, step_id: str | None) -> ImagePlan:
        where = f"step {step_id!r}" if step_id else f"pipeline {self.deployment.pipeline.name!r}"
        parent = self._parent(settings)
        parent_id = _image_id(self.client, parent, where)
        python = _parent_python(self.client, parent, parent_id, self.builder.cache.root)
        resolver = Resolver(python_version=python)
        for name in [*stack_distributions(self.ctx.stack), *materializer_distributions()]:
            resolver.add_conveyor(name)
        artifact_path = self.ctx.stack.artifact_store.path
        for name in store_requirements(self.ctx.store.url, artifact_path):
            resolver.add(parse_requirement(name, where))
        for text in user_requirements(settings, self.source_root):
            resolver.add(parse_requirement(text, f"docker settings of {where}"), original=text)
        if settings.replicate_local_environment:
            for canonical, dist in sorted(resolver.installed.items()):
                if canonical not in _NOT_REPLICATED:
                    resolver.add(parse_requirement(f"{dist.metadata['Name']}=={dist.version}", where))
        plan = ImagePlan(
            repository=repository_name(self.registry_uri, settings, self.deployment.pipeline.name),
            parent=parent,
            parent_id=parent_id,
            settings=settings,
            pinned=resolver.pinned,
            pip_requirements=resolver.unresolved,
            conveyor=resolver.conveyor,
        )
        if settings.copy_source:
            plan.code_root, plan.code_files = self.source_root, self._code_files(settings).files
        for host, dest in sorted(settings.extra_files.items()):
            if not dest.startswith("/"):
                raise ConfigError(f"docker settings of {where}: extra_files target {dest!r} is not an absolute path")
            src = Path(host).expanduser()
            plan.extra_files.append((dest, extra_files_of(src if src.is_absolute() else self.source_root / src)))
        plan.inputs = {
            "format": BUILD_FORMAT,
            "parent": parent_id,
            "requirements": plan.requirement_lines(),
            "conveyor": [self._conveyor_key(n, d) for n, d in sorted(plan.conveyor.items())],
            "extra": [[dest, files_hash(files, follow_symlinks=True)] for dest, files in plan.extra_files],
            "code": files_hash(plan.code_files),
        }
        plan.labels = {"conveyor.pipeline": self.deployment.pipeline.name, "conveyor.image": plan.tag}
        return plan

    def _code_files(self, settings: DockerSettings) -> SourceFiles:
        key = settings.dockerignore
        if key not in self._code:
            found = self._code[key] = code_files(self.source_root, settings)
            if found.untracked_python:
                shown = ", ".join(repr(n) for n in found.untracked_python[:3])
                more = f" and {len(found.untracked_python) - 3} more" if len(found.untracked_python) > 3 else ""
                print(
                    f"conveyor: untracked Python files are not copied into the image: {shown}{more} "
                    "(git add them to ship them, or list them in .conveyorignore)",
                    file=sys.stderr,
                )
        return self._code[key]

    def _conveyor_key(self, name: str, dist: Any) -> dict[str, str]:
        if name not in self._conveyor_keys:
            self._conveyor_keys[name] = conveyor_source_key(dist)
        return self._conveyor_keys[name]

    def _parent(self, settings: DockerSettings) -> str:
        if settings.dockerfile is None:
            return settings.parent_image or self.builder.default_parent()
        return _build_user_parent(self.client, settings, self.source_root)


# -- helpers -------------------------------------------------------------------------
def _image_id(client: Any, name: str, where: str) -> str:
    """The id of a local image, pulling it first if it is not here.

    Raises:
        ConfigError: the image is neither here nor pullable.
    """
    import docker
    import requests

    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        pass
    try:
        return str(client.images.pull(name).id)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0]
        raise ConfigError(
            f"parent image {name!r} of {where} is not on this machine and cannot be pulled: {reason}",
            "build or pull it first (docker pull NAME), or set DockerSettings(parent_image=...) "
            "or the image builder's parent_image",
        ) from None


def _parent_python(client: Any, parent: str, parent_id: str, cache_root: Path) -> list[int]:
    """The parent image's Python version (probed once per image id).

    Raises:
        ConfigError: the image runs no ``python`` with pip, or not this
            machine's major.minor (wheels for the image are prepared here).
    """
    probes = cache_root / "probes"
    path = probes / f"{parent_id.replace(':', '_')}.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        info = None
    if info is None:
        code, output = run_once(client, parent_id, ["python", "-c", _PROBE])
        if code != 0:
            raise ConfigError(
                f"parent image {parent!r} cannot run python: {output.strip().splitlines()[-1] if output.strip() else f'exit code {code}'}",
                "use a parent image with python and pip on PATH (e.g. python:3.11-slim)",
            )
        info = json.loads(output.strip().splitlines()[-1])
        probes.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))
    here = list(sys.version_info[:2])
    if info["version"][:2] != here:
        there = ".".join(map(str, info["version"][:2]))
        raise ConfigError(
            f"parent image {parent!r} has Python {there}, this machine {here[0]}.{here[1]}; "
            "wheels for the image are prepared here",
            f"use a parent image with Python {here[0]}.{here[1]}",
        )
    if not info["pip"]:
        raise ConfigError(
            f"parent image {parent!r} has no pip",
            "use a parent image whose python has pip (a venv, or python:3.X-slim)",
        )
    return [int(n) for n in info["version"]]


def run_once(client: Any, image: str, argv: list[str]) -> tuple[int, str]:
    """Run a command in a throwaway container (no network); returns ``(exit code, output)``."""
    import docker

    container = None
    try:
        container = client.containers.create(image, entrypoint=argv[:1], command=argv[1:], network_mode="none")
        container.start()
        code = int(container.wait(timeout=120).get("StatusCode", 1))
        return code, container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except docker.errors.APIError as exc:
        return 127, str(exc.explanation or exc)
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass


def _remove_leftovers(client: Any, log: EventLog, parent_id: str) -> None:
    """After a failed build, remove the untagged layers it made (docker would show them as dangling)."""
    import docker

    made = [m.group(1) for line in log.lines if (m := re.match(r"^\s*---> ([0-9a-f]{12,64})\s*$", line))]
    for image_id in reversed(made):
        try:
            image = client.images.get(image_id)
        except docker.errors.ImageNotFound:
            continue
        if image.id == parent_id or image.tags:
            break
        try:
            client.images.remove(image.id, noprune=False)
        except docker.errors.APIError:
            break  # still a parent of something else: a cache layer worth keeping
        break  # removing the newest one pruned its untagged parents with it


def _build_user_parent(client: Any, settings: DockerSettings, source_root: Path) -> str:
    """Build the user's Dockerfile (once per content) and return its tag."""
    import hashlib

    import docker
    import requests

    dockerfile = Path(settings.dockerfile or "")
    if not dockerfile.is_absolute():
        dockerfile = source_root / dockerfile
    if not dockerfile.is_file():
        raise ConfigError(f"Dockerfile {dockerfile} does not exist", "fix DockerSettings(dockerfile=...)")
    root = Path(settings.build_context_root) if settings.build_context_root else dockerfile.parent
    if not root.is_absolute():
        root = source_root / root
    files = folder_files(root)
    text = dockerfile.read_bytes()
    tag = hashlib.sha256(text + files_hash(files).encode()).hexdigest()[:32]
    name = f"conveyor-parent:{tag}"
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    import tarfile
    import tempfile

    log = EventLog()
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as tar:
            for rel, path in files:
                if rel != ".conveyor-Dockerfile":
                    add_file(tar, rel, path)
            add_bytes(tar, ".conveyor-Dockerfile", text)
        context.seek(0)
        try:
            log.feed(
                client.api.build(
                    fileobj=context,
                    custom_context=True,
                    dockerfile=".conveyor-Dockerfile",
                    tag=name,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    network_mode="host",
                    decode=True,
                    labels={"conveyor.parent": tag},
                )
            )
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.error = log.error or str(exc)
    if log.error:
        _remove_leftovers(client, log, "")
        raise BuildFailedError(
            f"building the Dockerfile {dockerfile} failed: {log.error.splitlines()[0]}",
            "fix the Dockerfile (its FROM image must be on this machine or pullable)",
            log_tail=log.tail(),
        )
    return name
