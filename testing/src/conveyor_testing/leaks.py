"""Finding a secret value wherever conveyor may have written it.

:func:`find_value` scans files and folders (recursively), the members of
tar, gzip and zip archives inside them (artifacts, wheels, image layers),
and Docker images through ``docker save``. Besides the value itself it looks
for the forms a value takes when written by common encoders: JSON- and
URL-escaped, and base64 (at any alignment, so a value inside a longer
base64 blob such as a docker ``auth`` entry is found too).

A test that must prove a value did not leak asserts ``find_value(...) == []``
(:func:`find_values` looks for several values in one pass).
:func:`inspected_containers` keeps ``docker inspect`` of the containers
started while a block runs, as files to scan after they are gone.
Something that cannot be scanned (a zstd layer without the ``zstandard``
package, a Docker image that cannot be saved) raises instead of passing.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import tarfile
import threading
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["DockerImage", "Hit", "find_value", "find_values", "inspected_containers", "needles"]

_CHUNK = 1 << 20
_MAX_DEPTH = 4  # archives inside archives inside ...


@dataclass(frozen=True)
class DockerImage:
    """An image to scan through ``docker save`` (give it among the paths of :func:`find_value`)."""

    ref: str


@dataclass(frozen=True)
class Hit:
    """One place a value was found.

    Attributes:
        where: the file, with ``!member`` for each archive level (``image.tar!layer.tar!etc/env``).
        offset: byte offset in that file or member.
        form: how the value was written (``raw``, ``json``, ``url``, ``base64``, ...).
        label: which value (the key it had in :func:`find_values`; empty for :func:`find_value`).
    """

    where: str
    offset: int
    form: str
    label: str = ""

    def __str__(self) -> str:
        what = f"{self.label}: " if self.label else ""
        return f"{what}{self.where} @{self.offset} ({self.form})"


def needles(value: str | bytes) -> dict[str, bytes]:
    """The byte strings that betray ``value``: ``{form: bytes}``."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    out = {"raw": raw}
    text = raw.decode("utf-8", "replace")
    escaped = json.dumps(text)[1:-1].encode("utf-8")
    if escaped != raw:
        out["json"] = escaped
    quoted = urllib.parse.quote(text, safe="").encode("ascii")
    if quoted != raw:
        out["url"] = quoted
    utf16 = text.encode("utf-16-le")
    out["utf-16"] = utf16
    # base64 of the value at each of the three alignments inside a longer
    # blob; characters touched by the neighbouring bytes are cut off.
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        total = shift + len(raw)
        start = (shift * 4 + 2) // 3  # first character made of value bits only
        end = total // 3 * 4 + total % 3  # last such character, plus one
        middle = encoded[start:end]
        if len(middle) >= 8:
            out[f"base64+{shift}"] = middle
            urlsafe = middle.replace(b"+", b"-").replace(b"/", b"_")
            if urlsafe != middle:
                out[f"base64url+{shift}"] = urlsafe
    return out


class _Scanner:
    def __init__(self, values: dict[str, str | bytes]) -> None:
        # One pass over the bytes for every value: an image is read once, not once per value.
        self.needles = [(label, form, n) for label, value in values.items() for form, n in needles(value).items()]
        self.overlap = max(len(n) for _, _, n in self.needles) - 1
        self.hits: list[Hit] = []

    # -- bytes -----------------------------------------------------------------------
    def scan_stream(self, where: str, stream: IO[bytes], depth: int = 0) -> None:
        head = stream.read(512)
        kind = _archive_kind(head)
        chained = _Chain(head, stream)
        if kind is not None and depth < _MAX_DEPTH:
            self.scan_archive(where, kind, chained, depth)
            return
        self.scan_plain(where, chained)

    def scan_plain(self, where: str, stream: IO[bytes]) -> None:
        tail = b""
        base = 0  # offset of tail[0]
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            data = tail + chunk
            for label, form, needle in self.needles:
                start = 0
                while True:
                    i = data.find(needle, start)
                    if i < 0:
                        break
                    # Matches wholly inside the old tail were reported with the last chunk.
                    if i + len(needle) > len(tail):
                        self.hits.append(Hit(where, base + i, form, label))
                    start = i + 1
            keep = min(self.overlap, len(data))
            base += len(data) - keep
            tail = data[len(data) - keep :] if keep else b""

    def scan_archive(self, where: str, kind: str, stream: IO[bytes], depth: int) -> None:
        if kind == "gzip":
            self.scan_stream(f"{where}!gunzip", gzip.GzipFile(fileobj=stream), depth + 1)
        elif kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise RuntimeError(f"{where} is zstd-compressed: pip install zstandard to scan it") from None
            self.scan_stream(f"{where}!unzstd", zstandard.ZstdDecompressor().stream_reader(stream), depth + 1)
        elif kind == "tar":
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    # Names and link targets are written in the headers: scan those too.
                    self.scan_plain(
                        f"{where}!{member.name}(header)",
                        io.BytesIO(f"{member.name}\0{member.linkname}".encode("utf-8", "replace")),
                    )
                    if member.isfile():
                        f = tar.extractfile(member)
                        if f is not None:
                            self.scan_stream(f"{where}!{member.name}", f, depth + 1)
        elif kind == "zip":
            data = stream.read()
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile:
                self.scan_plain(where, io.BytesIO(data))
                return
            with archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        with archive.open(info) as f:
                            self.scan_stream(f"{where}!{info.filename}", f, depth + 1)
            # Also the raw bytes: stored (uncompressed) members and the central directory.
            self.scan_plain(f"{where}(raw)", io.BytesIO(data))

    # -- sources ---------------------------------------------------------------------
    def scan_path(self, path: Path) -> None:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    self.scan_file(Path(root) / name)
                    self.scan_plain(str(Path(root) / name) + "(name)", io.BytesIO(name.encode("utf-8", "replace")))
        elif path.exists():
            self.scan_file(path)
        else:
            raise FileNotFoundError(f"nothing to scan at {path}")

    def scan_file(self, path: Path) -> None:
        if path.is_symlink() or not path.is_file():
            return  # sockets, fifos; a symlink's target is scanned where it lives
        try:
            with open(path, "rb") as f:
                self.scan_stream(str(path), f)
        except (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile):
            # Looked like an archive but is not one (or is cut short): scan its bytes.
            with open(path, "rb") as f:
                self.scan_plain(str(path), f)

    def scan_image(self, image: DockerImage) -> None:
        with subprocess.Popen(["docker", "save", image.ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                self.scan_archive(f"docker-image:{image.ref}", "tar", proc.stdout, 0)
                failure = None
            except tarfile.TarError as exc:
                failure = exc
            proc.stdout.read()
            stderr = proc.stderr.read().decode("utf-8", "replace").strip()
            code = proc.wait()
        if code != 0 or failure is not None:
            raise RuntimeError(f"docker save {image.ref} failed ({code}): {stderr or failure}")


class _Chain(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        return super().read(size) or b""


def _archive_kind(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _sources(paths: Iterable[str | os.PathLike[str] | DockerImage]) -> Iterator[Path | DockerImage]:
    for p in paths:
        if isinstance(p, DockerImage):
            yield p
        elif isinstance(p, str) and p.startswith("docker-image:"):
            yield DockerImage(p.split(":", 1)[1])
        else:
            yield Path(p)


def find_value(paths: Iterable[str | os.PathLike[str] | DockerImage], value: str | bytes) -> list[Hit]:
    """Every place under ``paths`` where ``value`` (or an encoding of it) was written.

    Args:
        paths: files and folders (scanned recursively, archives opened), and
            Docker images as :class:`DockerImage` or ``"docker-image:REF"``.
        value: the secret value; at least 4 bytes, or the scan would match noise.

    Raises:
        ValueError: the value is too short to look for.
        FileNotFoundError: a path does not exist.
        RuntimeError: an image or archive cannot be scanned.
    """
    return find_values(paths, {"": value})


def find_values(paths: Iterable[str | os.PathLike[str] | DockerImage], values: dict[str, str | bytes]) -> list[Hit]:
    """Every place under ``paths`` where any of ``values`` was written, in one pass; each hit's ``label`` is its key.

    Args:
        paths: as for :func:`find_value`.
        values: ``{label: secret value}``; each at least 4 bytes.

    Raises:
        ValueError: no value, or a value too short to look for.
        FileNotFoundError: a path does not exist.
        RuntimeError: an image or archive cannot be scanned.
    """
    if not values:
        raise ValueError("nothing to look for")
    for value in values.values():
        if len(value) < 4:
            raise ValueError("a value shorter than 4 characters cannot be told from noise")
    scanner = _Scanner(values)
    for source in _sources(paths):
        if isinstance(source, DockerImage):
            scanner.scan_image(source)
        else:
            scanner.scan_path(source)
    return scanner.hits


@contextmanager
def inspected_containers(folder: Path) -> Iterator[list[Path]]:
    """``docker inspect`` of every container created while the block runs, written to ``folder/<id>.json``.

    Yields the list of files written, filled in as containers appear (a
    container removed before it could be inspected is left out: steps run
    for longer than that). The watcher (``docker events``) is stopped when
    the block ends.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    argv = ["docker", "events", "--filter", "type=container", "--filter", "event=create", "--format", "{{json .}}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    stdout = proc.stdout

    def watch() -> None:
        for line in stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ident = (event.get("Actor") or {}).get("ID") or event.get("id")
            if not ident:
                continue
            done = subprocess.run(["docker", "inspect", ident], capture_output=True, check=False)
            if done.returncode == 0:
                target = folder / f"{ident}.json"
                target.write_bytes(done.stdout)
                written.append(target)

    watcher = threading.Thread(target=watch, name="docker-events", daemon=True)
    watcher.start()
    try:
        yield written
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        watcher.join(timeout=30)
        stdout.close()
