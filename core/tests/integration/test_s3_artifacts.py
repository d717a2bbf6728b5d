"""Artifacts in a real S3 server (SeaweedFS): written in place, hashed as written, nothing left behind.

An object store has no folders to rename, so an artifact goes straight to its
own key prefix; the content hash is computed while the bytes are written.
Both must give exactly what the local store gives.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client
from conveyor.stores import ArtifactStore
from conveyor_testing.conformance import CASES, artifact_hashes, check_run, run_case
from conveyor_testing.s3_server import S3Endpoint

pytestmark = [pytest.mark.integration, pytest.mark.s3]


def _s3fs(endpoint: S3Endpoint) -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **endpoint.storage_options())


@pytest.fixture
def s3_stack(repo: Path, s3_endpoint: S3Endpoint, s3_bucket: str) -> str:
    client = Client()
    client.register_component(
        "artifact_store",
        "bucket",
        "s3",
        {
            "path": f"s3://{s3_bucket}/artifacts",
            **s3_endpoint.component_options(),
        },
    )
    client.register_component("orchestrator", "in_processes", "local", {"mode": "process"})
    client.register_stack("on_s3", {"orchestrator": "default", "artifact_store": "bucket"})
    client.register_stack("on_s3_processes", {"orchestrator": "in_processes", "artifact_store": "bucket"})
    return s3_bucket


def test_conformance_cases_on_s3_give_the_local_artifacts(
    s3_stack: str, examples_path: Path, s3_endpoint: S3Endpoint
) -> None:
    local = {c.name: artifact_hashes(run_case(c)) for c in CASES}
    fs = _s3fs(s3_endpoint)
    for stack in ("on_s3", "on_s3_processes"):
        for case in CASES:
            run = run_case(case, stack=stack)
            check_run(case, run)
            assert artifact_hashes(run) == local[case.name], (stack, case.name)
            for step in run.steps.values():
                for artifact in step.outputs.values():
                    assert artifact.uri.startswith(f"s3://{s3_stack}/artifacts/")
    # Written in place: no temporary prefixes anywhere in the bucket.
    keys = fs.find(s3_stack)
    assert keys
    assert not [k for k in keys if ".tmp-" in k]


def test_a_leftover_of_an_earlier_attempt_is_replaced(s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/a", s3_endpoint.storage_options())
    uri = store.join("pipe", "step", "run-1", "output")
    fs = _s3fs(s3_endpoint)
    fs.pipe(f"{uri}/stale.bin", b"from a killed attempt")
    where = store.begin_artifact(uri)
    assert where == uri
    with store.open(f"{where}/data.json", "wb") as f:
        f.write(b"[1, 2, 3]")
    written = store.content_hash(where)
    store.commit(where, uri)
    assert [k.rsplit("/", 1)[1] for k in fs.find(uri)] == ["data.json"]
    # The hash taken while writing is the hash of the bytes read back.
    assert ArtifactStore(f"s3://{s3_bucket}/a", s3_endpoint.storage_options()).content_hash(uri) == written


def test_a_failed_save_leaves_nothing_in_the_bucket(s3_stack: str, repo: Path, s3_endpoint: S3Endpoint) -> None:
    (repo / "half.py").write_text(
        "from conveyor import pipeline, step\n"
        "from conveyor.materializers import BaseMaterializer\n"
        "class Half:\n    pass\n"
        "class HalfMaterializer(BaseMaterializer):\n"
        "    ASSOCIATED_TYPES = (Half,)\n"
        "    def save(self, data):\n"
        "        with self.open('part.bin', 'wb') as f:\n"
        "            f.write(b'x' * 1000)\n"
        "        raise OSError('disk full')\n"
        "@step\ndef make() -> Half:\n    return Half()\n"
        "@pipeline(enable_cache=False)\ndef half_pipe() -> None:\n    make()\n"
    )
    import importlib
    import sys

    sys.path.insert(0, str(repo))
    try:
        module = importlib.import_module("half")
        from conveyor.exceptions import StepFailedError

        with pytest.raises(StepFailedError, match="disk full"):
            module.half_pipe.with_options(stack="on_s3")()
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("half", None)
    run = Client().get_pipeline("half_pipe").last_run
    assert run.steps["make"].status == "failed"
    assert not [k for k in _s3fs(s3_endpoint).find(s3_stack) if "/half_pipe/make/" in k and not k.endswith("logs.txt")]


@pytest.mark.parametrize("kind", ["local", "fsspec-file", "s3"])
def test_the_hash_taken_while_writing_is_the_hash_of_the_bytes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        root = f"s3://{request.getfixturevalue('s3_bucket')}/h"
        make = lambda: ArtifactStore(root, endpoint.storage_options())  # noqa: E731
    elif kind == "fsspec-file":  # an fsspec store over local files: hashed while written, seekable
        root = str(tmp_path / "store")
        make = lambda: ArtifactStore(root)  # noqa: E731
    else:  # a local folder: hashed by reading back
        from conveyor.stores import LocalArtifactStore

        root = str(tmp_path / "store")
        make = lambda: LocalArtifactStore(root)  # noqa: E731
    store = make()
    uri = store.join("p", "s", "r", "out")
    where = store.begin_artifact(uri)
    payload = os.urandom(3 << 20)
    with store.open(store.join(where, "b", "big.bin"), "wb") as f:
        for start in range(0, len(payload), 1 << 20):
            f.write(memoryview(payload)[start : start + (1 << 20)])
    with store.open(store.join(where, "a.txt"), "wb") as f:
        if kind != "s3":  # S3 files cannot seek while written
            f.write(b"first")
            f.seek(0)  # rewritten in place: this file is read back when hashed
            f.write(b"FIRST")
        else:
            f.writelines([b"FI", b"RST"])
    with store.open(store.join(where, "c.txt"), "w") as f:  # text mode: read back too
        f.write("third")
    written = store.content_hash(where)
    store.commit(where, uri)
    fresh = make().content_hash(uri)
    assert written == fresh
    expected = hashlib.sha256()
    for rel, data in (("a.txt", b"FIRST"), ("b/big.bin", payload), ("c.txt", b"third")):
        expected.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert fresh == expected.hexdigest()
