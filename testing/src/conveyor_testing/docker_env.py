"""Session fixtures for a real Docker environment.

``docker_daemon`` gives a ``docker.DockerClient`` (reusing a daemon that
already answers, otherwise starting one), ``registry`` a throwaway v2 registry
on 127.0.0.1, ``base_image`` the locally built ``conveyor-python:bookworm``
and ``wheel_cache`` the image builder's wheel folder.

Under pytest-xdist the workers share one daemon: the first worker that needs
it starts it under a lock and the controller stops it when the run ends (a
worker that stopped it at its own end would pull it from under the others).

Everything here talks only to 127.0.0.1 or the local Docker socket; containers
must use ``network_mode="host"`` (or none) because the daemon has no bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor_testing.processes import (
    BOOTSTRAP_HINT,
    HOST,
    ServerStartError,
    free_port,
    spawn_server,
    start_with_retries,
    stop_server,
    wait_until,
)

__all__ = [
    "BASE_IMAGE",
    "MANIFEST_ACCEPT",
    "Registry",
    "RegistryServer",
    "base_image",
    "docker_daemon",
    "registry",
    "repo_root",
    "start_registry",
    "stop_shared_daemon",
    "wheel_cache",
]

BASE_IMAGE = "conveyor-python:bookworm"
FIX_HINT = BOOTSTRAP_HINT
DOCKERD_ARGS = ["--bridge=none", "--iptables=false", "--ip-masq=false"]
DAEMON_START_TIMEOUT = 60.0
REGISTRY_START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
BASE_IMAGE_BUILD_TIMEOUT = 1200.0

ENV_SHARED_DIR = "CONVEYOR_TEST_SHARED_DIR"
"""A folder the xdist workers of one run share (the controller makes it): locks, the daemon a worker started."""

ENV_WHEEL_CACHE = "CONVEYOR_TEST_WHEEL_CACHE"
"""A wheel folder kept across sessions (nox sets it); unset, each session prepares its wheels in a folder of its own."""

# What a v2 client accepts; without it the registry down-converts to schema 1.
MANIFEST_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json"
)

# No proxy handler: a proxy from the environment must never see local traffic.
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------
# docker daemon


def _import_docker():
    try:
        import docker
    except ImportError:
        pytest.fail(f"python package 'docker' is missing; {FIX_HINT}", pytrace=False)
    return docker


def _client(docker_mod, base_url: str | None = None, timeout: int = 300, version: str | None = None):
    if base_url:
        return docker_mod.DockerClient(base_url=base_url, timeout=timeout, version=version)
    return docker_mod.from_env(timeout=timeout, version=version)


def _answering_client(docker_mod, base_url: str | None = None):
    """A client if a daemon answers right now, else None."""
    import requests  # comes with docker; kept lazy so this module always imports

    # The docker SDK leaks the socket of a unix connection that fails, so a
    # daemon that is still starting is probed with a plain socket first.
    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            try:
                sock.connect(where.removeprefix("unix://"))
            except OSError:
                return None
    # A pinned API version keeps the constructor off the network; the ping
    # then fails where the probe can be closed.
    probe = _client(docker_mod, base_url, timeout=5, version="1.41")
    try:
        probe.ping()
    except (
        docker_mod.errors.DockerException,
        requests.exceptions.RequestException,
        OSError,
    ):
        return None
    finally:
        probe.close()
    return _client(docker_mod, base_url)


def _shared_dir() -> Path | None:
    """The folder this xdist worker shares with the others of its run (None outside xdist)."""
    value = os.environ.get(ENV_SHARED_DIR)
    return Path(value) if value and os.environ.get("PYTEST_XDIST_WORKER") else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (other processes wait)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dockerd() -> str:
    """The dockerd this test process may start, or a test failure saying why it may not."""
    if os.environ.get("DOCKER_HOST"):
        pytest.fail(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; unset it or start that daemon",
            pytrace=False,
        )
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.fail(f"dockerd is not installed; {FIX_HINT}", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("no Docker daemon answers and starting one needs root", pytrace=False)
    return dockerd


def _wait_for_daemon(docker_mod: Any, proc: subprocess.Popen[bytes], log_path: Path) -> Any:
    found: list[Any] = []

    def answers() -> bool:
        client = _answering_client(docker_mod, "unix:///var/run/docker.sock")
        if client is not None:
            found.append(client)
        return client is not None

    try:
        wait_until(answers, proc=proc, what="dockerd", log_path=log_path, timeout=DAEMON_START_TIMEOUT)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    return found[0]


_SHARED_DAEMONS: list[subprocess.Popen[bytes]] = []


def _start_shared_daemon(docker_mod: Any, shared: Path) -> Any:
    """Start dockerd for every worker of the run; the controller stops it (:func:`stop_shared_daemon`)."""
    import psutil

    log_path = shared / "dockerd.log"
    with open(log_path, "ab") as log:
        # Not tied to this worker's life: the other workers may still need it when this one ends.
        proc = subprocess.Popen(
            [_dockerd(), *DOCKERD_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _SHARED_DAEMONS.append(proc)  # kept: the controller, not this worker, ends it
    (shared / "dockerd.pid").write_text(json.dumps([proc.pid, psutil.Process(proc.pid).create_time()]))
    return _wait_for_daemon(docker_mod, proc, log_path)


def stop_shared_daemon(shared: Path) -> None:
    """Stop the daemon a worker of the run started in ``shared`` (by its recorded PID), if one did."""
    import psutil

    from conveyor.stores import process_is_gone

    try:
        pid, started = json.loads((shared / "dockerd.pid").read_text())
    except (FileNotFoundError, ValueError):
        return
    if process_is_gone(pid, started):  # ended, or its PID is another process's by now
        return
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    except psutil.Error:
        return


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``docker.DockerClient`` for a running daemon."""
    docker_mod = _import_docker()

    # A second dockerd on the same host deletes the first one's bridge, so an
    # answering daemon is always reused and never stopped.
    client = _answering_client(docker_mod)
    if client is not None:
        yield client
        client.close()
        return

    shared = _shared_dir()
    if shared is not None:
        with _locked(shared / "dockerd.lock"):
            client = _answering_client(docker_mod) or _start_shared_daemon(docker_mod, shared)
        yield client
        client.close()
        return

    dockerd = _dockerd()
    log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    # Default data root on purpose: the base image then survives sessions.
    proc = spawn_server([dockerd, *DOCKERD_ARGS], log_path=log_path)
    try:
        client = _wait_for_daemon(docker_mod, proc, log_path)
        yield client
        client.close()
    finally:
        stop_server(proc, timeout=STOP_TIMEOUT)


# --------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class Registry:
    """A running local v2 registry."""

    host: str  # "127.0.0.1:PORT", the prefix for image names
    url: str  # "http://127.0.0.1:PORT"
    root: Path  # filesystem storage

    def get(self, path: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET ``/v2/...`` on this registry: (status, headers, body)."""
        req = urllib.request.Request(self.url + path)
        if accept:
            req.add_header("Accept", accept)
        try:
            with _LOCAL_HTTP.open(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def manifest(self, repo: str, ref: str) -> tuple[str, dict]:
        """(digest, manifest) of ``repo:ref``; raises LookupError if absent."""
        status, headers, body = self.get(f"/v2/{repo}/manifests/{ref}", MANIFEST_ACCEPT)
        if status != 200:
            raise LookupError(f"{self.host}/{repo}:{ref}: HTTP {status} {body[:200]!r}")
        return headers.get("Docker-Content-Digest", ""), json.loads(body)

    def tags(self, repo: str) -> list[str]:
        """Tags of ``repo`` in this registry (none if the repository is unknown)."""
        status, _, body = self.get(f"/v2/{repo}/tags/list")
        if status == 404:
            return []
        return json.loads(body).get("tags") or []


_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
{maintenance}http:
  addr: 127.0.0.1:{port}
"""


_READONLY = """\
  maintenance:
    readonly:
      enabled: true
"""


@dataclass
class RegistryServer:
    """A ``docker-registry`` process started by :func:`start_registry`."""

    registry: Registry
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """Stop the registry by its PID (its storage stays for the caller to remove)."""
        stop_server(self.proc, timeout=STOP_TIMEOUT)


def start_registry(work: Path, *, readonly: bool = False) -> RegistryServer:
    """Start a v2 registry on a free port of 127.0.0.1, storing into ``work/data``; wait until it answers.

    With ``readonly``, the registry serves pulls and refuses pushes (its
    maintenance mode). Fails the test with the log's tail if it cannot start.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(f"docker-registry is not installed; {FIX_HINT}", pytrace=False)
    root = work / "data"
    root.mkdir(parents=True, exist_ok=True)

    def start() -> RegistryServer:
        port = free_port()
        config = work / "config.yml"
        config.write_text(_REGISTRY_CONFIG.format(root=root, port=port, maintenance=_READONLY if readonly else ""))
        log_path = work / "registry.log"
        proc = spawn_server([binary, "serve", str(config)], log_path=log_path)
        reg = Registry(host=f"{HOST}:{port}", url=f"http://{HOST}:{port}", root=root)
        try:
            wait_until(
                lambda: reg.get("/v2/")[0] == 200,
                proc=proc,
                what="docker-registry",
                log_path=log_path,
                timeout=REGISTRY_START_TIMEOUT,
            )
        except BaseException:
            stop_server(proc)
            raise
        return RegistryServer(registry=reg, proc=proc, log_path=log_path)

    return start_with_retries(start, "docker-registry")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A fresh v2 registry on 127.0.0.1 with storage in a temp dir."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server.registry
    finally:
        server.stop()


# --------------------------------------------------------------------------
# base image


def repo_root() -> Path:
    """The conveyor checkout that holds scripts/build-base-image.sh."""
    here = Path(__file__).resolve().parents[3]
    if (here / "scripts" / "build-base-image.sh").is_file():
        return here
    # Installed non-editable: fall back to the checkout pytest runs in.
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    top = Path(out.stdout.strip()) if out.returncode == 0 else None
    if top is None or not (top / "scripts" / "build-base-image.sh").is_file():
        pytest.fail(
            "cannot find scripts/build-base-image.sh of the conveyor checkout",
            pytrace=False,
        )
    return top


@pytest.fixture(scope="session")
def base_image(docker_daemon) -> str:
    """Name of the local Python base image, built on first use (~40 s; once for all xdist workers)."""
    shared = _shared_dir()
    with _locked(shared / "base-image.lock") if shared is not None else contextlib.nullcontext():
        return _base_image(docker_daemon)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docker image builder's wheel folder: ``CONVEYOR_TEST_WHEEL_CACHE``, or one for the session.

    The builder prepares a wheel once per input and publishes it atomically,
    so sessions and parallel workers may share one folder.
    """
    kept = os.environ.get(ENV_WHEEL_CACHE)
    if kept:
        path = Path(kept)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("wheel-cache")


def _base_image(docker_daemon: Any) -> str:
    docker_mod = _import_docker()
    try:
        docker_daemon.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker_mod.errors.ImageNotFound:
        pass
    if shutil.which("mmdebstrap") is None:
        pytest.fail(f"mmdebstrap is not installed; {FIX_HINT}", pytrace=False)
    script = repo_root() / "scripts" / "build-base-image.sh"
    env = dict(os.environ, CONVEYOR_BASE_IMAGE=BASE_IMAGE)
    try:
        out = subprocess.run(
            ["bash", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=BASE_IMAGE_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} took over {BASE_IMAGE_BUILD_TIMEOUT:.0f} s", pytrace=False)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-20:])
        pytest.fail(f"{script} failed ({out.returncode}):\n{tail}", pytrace=False)
    return BASE_IMAGE
