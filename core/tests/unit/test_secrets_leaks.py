"""The leak finder the secrets tests trust: it must find a value in every form conveyor could write it."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from conveyor_testing.leaks import find_value

VALUE = "lEaK-51e0-unique/value+x"


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_finds_the_value_in_every_form_and_container(tmp_path: Path) -> None:
    raw = VALUE.encode()
    files = {
        "plain.log": os.urandom(3 << 20) + raw,  # past the first read chunk
        "escaped.json": json.dumps({"v": VALUE}).encode(),
        "url.txt": b"https://host/?t=" + urllib.parse.quote(VALUE, safe="").encode(),
        "auth.json": json.dumps({"auth": base64.b64encode(b"user:" + raw).decode()}).encode(),
        "log.gz": gzip.compress(b"line " + raw),
        "layer.tar": _tar({"etc/app.env": b"TOKEN=" + raw, "blob": gzip.compress(_tar({"deep": raw}))}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "pkg.whl", "w", zipfile.ZIP_DEFLATED) as whl:
        whl.writestr("pkg/settings.py", f"TOKEN = {VALUE!r}\n")
    hits = find_value([tmp_path], VALUE)
    where = {Path(h.where.split("!")[0]).name for h in hits}
    assert where == {*files, "pkg.whl"}
    assert {h.form for h in hits if "auth.json" in h.where} <= {f"base64+{i}" for i in range(3)}
    assert any(h.where.endswith("layer.tar!blob!gunzip!deep") for h in hits)
    assert any(h.where == str(tmp_path / "plain.log") and h.offset == 3 << 20 for h in hits)


def test_finds_nothing_where_there_is_nothing(tmp_path: Path) -> None:
    (tmp_path / "noise.bin").write_bytes(os.urandom(1 << 20))
    (tmp_path / "near.txt").write_text(VALUE[:-1] + "?" + VALUE[1:])
    (tmp_path / "data.gz").write_bytes(gzip.compress(b"nothing to see"))
    assert find_value([tmp_path, tmp_path / "near.txt"], VALUE) == []


def test_refuses_what_it_cannot_judge(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shorter than 4"):
        find_value([tmp_path], "abc")
    with pytest.raises(FileNotFoundError, match="nothing to scan"):
        find_value([tmp_path / "missing"], VALUE)
