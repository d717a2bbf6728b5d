"""Artifact stores on a real S3 server (SeaweedFS) whose credentials are secret references.

The stores reach the server only if the references resolve inside the step
processes; afterwards no value is in any file the run wrote: the repository
(database, logs, config) and every object in the bucket.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import Client
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value
from conveyor_testing.s3_server import S3Endpoint

pytestmark = [pytest.mark.integration, pytest.mark.s3]

TAG = "s3-tag-8e2f-uNiQuE-c0ffee"

PIPELINE = """
import hashlib, os
from conveyor import get_step_context, pipeline, step

@step(secrets=["s3_extra"])
def tagged() -> str:
    tag = get_step_context().get_secret("s3_extra")["tag"]
    print("tag", tag)
    return hashlib.sha256(tag.encode()).hexdigest()

@step(environment={"S3_TAG": "{{s3_extra.tag}}"})
def from_env(previous: str) -> str:
    print("env tag", os.environ["S3_TAG"])
    return hashlib.sha256(os.environ["S3_TAG"].encode()).hexdigest()

@pipeline(enable_cache=False)
def s3_secrets() -> None:
    from_env(tagged())
"""


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pipeline_module(repo: Path) -> Iterator[ModuleType]:
    (repo / "s3_pipe.py").write_text(PIPELINE)
    sys.path.insert(0, str(repo))
    try:
        yield importlib.import_module("s3_pipe")
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("s3_pipe", None)


def _bucket_copy(endpoint: S3Endpoint, bucket: str, target: Path) -> Path:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **endpoint.storage_options())
    keys = fs.find(bucket)
    assert keys, f"nothing was written to bucket {bucket}"
    fs.get(keys, str(target) + "/", recursive=True)
    return target


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_s3_stores_configured_by_references_leave_no_value_behind(
    repo: Path,
    pipeline_module: ModuleType,
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    mode: str,
    tmp_path_factory: pytest.TempPathFactory,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Client()
    client.create_secret(
        "s3_creds",
        {"aws_access_key_id": s3_endpoint.key, "aws_secret_access_key": s3_endpoint.secret},
        schema="aws",
    )
    client.create_secret("s3_extra", {"endpoint": s3_endpoint.url, "tag": TAG})
    # The s3 flavor, as `conveyor artifact-store register s3 --flavor s3 --key '{{...}}'` registers it.
    client.register_component(
        "artifact_store",
        "s3_flavor",
        "s3",
        {
            "path": f"s3://{s3_bucket}/s3-flavor",
            "key": "{{s3_creds.aws_access_key_id}}",
            "secret": "{{s3_creds.aws_secret_access_key}}",
            "endpoint_url": "{{s3_extra.endpoint}}",
            "region": s3_endpoint.region,
        },
    )
    # The fsspec flavor with storage options; the tag rides in the User-Agent, harmless to the server.
    client.register_component(
        "artifact_store",
        "s3_fsspec",
        "fsspec",
        {
            "path": f"s3://{s3_bucket}/fsspec",
            "storage_options": {
                "key": "{{s3_creds.aws_access_key_id}}",
                "secret": "{{s3_creds.aws_secret_access_key}}",
                "client_kwargs": {"endpoint_url": "{{s3_extra.endpoint}}", "region_name": s3_endpoint.region},
                "config_kwargs": {"user_agent_extra": "conveyor-test/{{s3_extra.tag}}"},
            },
        },
    )
    client.register_component("orchestrator", "local_mode", "local", {"mode": mode})
    digest = hashlib.sha256(TAG.encode()).hexdigest()
    for store in ("s3_flavor", "s3_fsspec"):
        client.register_stack(store, {"orchestrator": "local_mode", "artifact_store": store})
        monkeypatch.setenv("CONVEYOR_STACK", store)
        run = pipeline_module.s3_secrets()
        assert run.status == "completed"
        assert run.steps["tagged"].output.uri.startswith(f"s3://{s3_bucket}/")
        assert {sid: s.output.load() for sid, s in run.steps.items()} == {"tagged": digest, "from_env": digest}
        assert "tag ***" in run.steps["tagged"].logs()
        assert "env tag ***" in run.steps["from_env"].logs()
    out, err = capfd.readouterr()
    bucket = _bucket_copy(s3_endpoint, s3_bucket, tmp_path_factory.mktemp("bucket"))
    for value in (TAG, s3_endpoint.url):
        assert value not in out + err
        assert find_value([repo, bucket], value) == []
