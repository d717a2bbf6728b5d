"""The ``mlflow`` model deployer: MLflow's scoring server as a managed local service.

Each service is a folder under the deployer's ``path``: ``service.json`` (the
record: configuration, PID and the process's start time, port), ``model/`` (a
local copy of the model, so the service starts again without the tracking
server) and ``service.log``. A service's status is read from its process, never
from the record alone: a PID that is gone, or that now belongs to another
process, is a stopped service.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.exceptions import ConfigError, ConveyorError, NotFoundError
from conveyor.stack import ModelDeployer, ServiceInfo, ServiceStatus

# Services this process started, kept so that they are reaped when stopped (and never
# reported as "still running" when this process lets go of them: they outlive it on purpose).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RECORD = "service.json"
_LOG = "service.log"
_MODEL = "model"


class ServiceError(ConveyorError):
    """A model service cannot be deployed, started or found."""


class MLflowModelDeployerConfig(BaseModel):
    """Config of the ``mlflow`` model deployer."""

    model_config = ConfigDict(extra="forbid")

    path: str = "~/.conveyor/services"
    """The folder that holds the services' records, model copies and logs."""
    host: str = "127.0.0.1"
    """The address the scoring servers listen on."""
    tracking_uri: str | None = None
    """Where ``runs:/`` and ``models:/`` URIs are looked up (default: the step's active MLflow tracking URI)."""
    startup_timeout: float = 120.0
    """Seconds a new service has to answer its health check."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server binds: connections of a stopped service that linger in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - the service's own address
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the response's socket
        return False
    except (OSError, ValueError):
        return False


class MLflowModelDeployer(ModelDeployer):
    """Serves MLflow models with MLflow's scoring server, one local process per service."""

    # -- records --------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The folder of the services' records."""
        return Path(os.path.expanduser(self.config.path))

    def _folder(self, service_id: str) -> Path:
        return self.root / service_id

    def _read(self, folder: Path) -> dict[str, Any] | None:
        try:
            data = json.loads((folder / _RECORD).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write(self, record: dict[str, Any]) -> None:
        folder = self._folder(record["id"])
        tmp = folder / f".{_RECORD}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
        os.replace(tmp, folder / _RECORD)  # readers never see half a record

    def _records(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        found = [r for f in sorted(self.root.iterdir()) if f.is_dir() and (r := self._read(f)) is not None]
        return sorted(found, key=lambda r: (r.get("created", ""), r["id"]))

    def _find(self, ref: str) -> dict[str, Any]:
        records = self._records()
        exact = [r for r in records if r["id"] == ref]
        by_name = [r for r in records if r.get("name") == ref]
        prefix = [r for r in records if len(ref) >= 4 and r["id"].startswith(ref)]
        for matches in (exact, by_name, prefix):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1 and matches is by_name:
                return matches[-1]  # the newest of that name
        known = ", ".join(sorted({r.get("name", "?") for r in records})) or "(none)"
        raise NotFoundError(f"no service {ref!r} (services: {known})", "see: conveyor service list")

    # -- processes ------------------------------------------------------------------
    def _process(self, record: dict[str, Any]) -> Any:
        """The service's process if it still runs, else None (a reused PID is not it)."""
        import psutil

        pid, started = record.get("pid"), record.get("pid_create_time")
        if not pid or started is None:
            return None
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) > 0.01:
                return None  # the PID belongs to another process now
            if proc.status() == psutil.STATUS_ZOMBIE:
                child = _CHILDREN.pop(pid, None)
                if child is not None:
                    child.wait(timeout=1)  # it died while this process still held it: reap it
                return None
            return proc
        except psutil.Error:
            return None

    def _status(self, record: dict[str, Any]) -> str:
        if self._process(record) is None:
            return ServiceStatus.STOPPED
        return ServiceStatus.RUNNING if _healthy(record["health_url"]) else ServiceStatus.STARTING

    def _info(self, record: dict[str, Any]) -> ServiceInfo:
        status = self._status(record)
        return ServiceInfo(
            id=record["id"],
            name=record["name"],
            flavor="mlflow",
            status=status,
            model_uri=record["model_uri"],
            url=record["url"],
            health_url=record["health_url"],
            host=record["host"],
            port=record["port"],
            pid=record.get("pid") if status != ServiceStatus.STOPPED else None,
            log_file=str(self._folder(record["id"]) / _LOG),
            created=record["created"],
            config=record.get("config", {}),
            metadata=record.get("metadata", {}),
        )

    def _spawn(self, record: dict[str, Any]) -> None:
        import psutil
        from mlflow.pyfunc import scoring_server

        host, port = record["host"], record["port"]
        if not _port_free(host, port):
            raise ServiceError(
                f"service {record['name']!r}: port {port} on {host} is in use by another process",
                "stop what uses it, or deploy with another port (port=None picks a free one)",
            )
        folder = self._folder(record["id"])
        command, env = scoring_server.get_cmd(model_uri=str(folder / _MODEL), port=port, host=host)
        argv = shlex.split(command)
        # The scoring server of this interpreter's MLflow, with no conda or virtualenv of its own.
        argv = [sys.executable, "-m", *argv] if argv[0] == "uvicorn" else argv
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        with open(folder / _LOG, "ab") as log:
            log.write(f"--- {_now()} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=env,
                # Its own session: the service outlives the step that deployed it, and stopping it
                # stops every process it started.
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        record["pid"] = proc.pid
        record["pid_create_time"] = psutil.Process(proc.pid).create_time()
        record["started"] = _now()
        self._write(record)

    def _wait_healthy(self, record: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if self._process(record) is None:
                tail = self._log_tail(record["id"])
                raise ServiceError(f"service {record['name']!r} exited while starting: {tail}")
            if _healthy(record["health_url"]):
                return
            time.sleep(0.5)
        raise ServiceError(
            f"service {record['name']!r} did not answer {record['health_url']} within {self.config.startup_timeout:g} s",
            f"see its log: conveyor service logs {record['id'][:12]}",
        )

    def _log_tail(self, service_id: str) -> str:
        try:
            lines = (self._folder(service_id) / _LOG).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def _kill(self, record: dict[str, Any]) -> None:
        import psutil

        proc = self._process(record)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except psutil.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                proc.wait(timeout=5)
        except psutil.Error:
            pass
        child = _CHILDREN.pop(proc.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    # -- the model ------------------------------------------------------------------
    def _copy_model(self, model_uri: str, target: Path) -> None:
        source = model_uri.removeprefix("file://")
        if os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            import mlflow

            tracking_uri = self.config.tracking_uri or mlflow.get_tracking_uri()
            try:
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=str(target), tracking_uri=tracking_uri
                )
            except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; the user needs one line
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ServiceError(f"cannot fetch model {model_uri!r}: {first}") from None
            # download_artifacts puts a single artifact folder inside dst_path.
            if not (target / "MLmodel").is_file():
                inner = [p for p in target.iterdir() if (p / "MLmodel").is_file()]
                if len(inner) == 1:
                    for item in inner[0].iterdir():
                        shutil.move(str(item), target / item.name)
                    inner[0].rmdir()
        if not (target / "MLmodel").is_file():
            raise ServiceError(
                f"{model_uri!r} is not an MLflow model: the mlflow model deployer serves the MLflow model format "
                "(a folder with an MLmodel file)",
                'log the model with MLflow (mlflow.sklearn.log_model(model, name="model")) and deploy its URI',
            )

    # -- the ModelDeployer interface ---------------------------------------------------
    def deploy(
        self,
        model_uri: str,
        *,
        name: str,
        replace: bool = True,
        port: int | None = None,
        metadata: dict[str, Any] | None = None,
        **options: Any,
    ) -> ServiceInfo:
        """Serve an MLflow model as service ``name`` and wait until it is healthy.

        Args:
            model_uri: ``runs:/ID/model``, ``models:/NAME/VERSION`` or a local folder in MLflow's model format.
            name: the service's name; deploying a name again replaces its service.
            replace: stop and delete an older service of this name, only after the new one is healthy.
            port: the port to listen on (default: a free one).
            metadata: what to record with the service (metrics such as accuracy).

        Raises:
            ServiceError: not an MLflow model, a port in use, or the server did not come up.
        """
        if options:
            raise ConfigError(f"deploy() got unknown options: {', '.join(sorted(options))}")
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"service name {name!r} is not allowed", "use letters, digits, '_', '.' or '-' (at most 64)"
            )
        old = self.find_service(name)
        if old is not None and not replace and old.status != ServiceStatus.STOPPED:
            raise ServiceError(f"service {name!r} runs already ({old.url})", "deploy with replace=True to replace it")
        host = self.config.host
        chosen = port if port is not None else _free_port(host)
        if port is not None and not _port_free(host, port):
            raise ServiceError(
                f"service {name!r}: port {port} on {host} is in use by another process",
                "stop what uses it, or deploy with another port (port=None picks a free one)",
            )
        service_id = uuid.uuid4().hex
        folder = self._folder(service_id)
        folder.mkdir(parents=True)
        try:
            self._copy_model(model_uri, folder / _MODEL)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        record: dict[str, Any] = {
            "id": service_id,
            "name": name,
            "model_uri": model_uri,
            "host": host,
            "port": chosen,
            "url": f"http://{host}:{chosen}/invocations",
            "health_url": f"http://{host}:{chosen}/ping",
            "created": _now(),
            "config": {"port": port, "host": host, "model_path": str(folder / _MODEL)},
            "metadata": dict(metadata or {}),
        }
        self._write(record)
        try:
            self._spawn(record)
            self._wait_healthy(record)
        except BaseException:
            self._kill(record)
            shutil.rmtree(folder, ignore_errors=True)  # the old service, if any, keeps serving
            raise
        if old is not None:
            self.delete_service(old.id)
        return self._info(record)

    def list_services(self) -> list[ServiceInfo]:
        """Every service with its status read from its process."""
        return [self._info(r) for r in self._records()]

    def get_service(self, ref: str) -> ServiceInfo:
        """A service by id, id prefix (4 characters or more) or name."""
        return self._info(self._find(ref))

    def stop_service(self, ref: str) -> ServiceInfo:
        """Stop a service's process (and every process it started)."""
        record = self._find(ref)
        self._kill(record)
        return self._info(record)

    def start_service(self, ref: str) -> ServiceInfo:
        """Start a stopped service with its recorded model, host and port; wait until it is healthy.

        Raises:
            ServiceError: its port is in use now, or it did not come up.
        """
        record = self._find(ref)
        if self._process(record) is None:
            self._spawn(record)
        self._wait_healthy(record)
        return self._info(record)

    def delete_service(self, ref: str) -> None:
        """Stop a service and remove its record, model copy and log."""
        record = self._find(ref)
        self._kill(record)
        shutil.rmtree(self._folder(record["id"]), ignore_errors=True)

    def service_logs(self, ref: str) -> str:
        """What the service's process wrote."""
        record = self._find(ref)
        try:
            return (self._folder(record["id"]) / _LOG).read_text(errors="replace")
        except OSError:
            return ""
