"""Artifact stores: where artifact bytes live (a local folder or any fsspec URL).

Writes are atomic: a materializer writes into a temporary folder next to the
final one, which is renamed into place only once every byte is written; the
artifact is registered in the metadata store after that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import IO, Any

from conveyor.exceptions import StoreError

_TMP_MARK = ".tmp-"


class ArtifactStore:
    """Base artifact store over an fsspec filesystem.

    Args:
        path: the root: a local folder or a URL such as ``s3://bucket/prefix``.
        storage_options: keyword arguments for the fsspec filesystem.
    """

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None) -> None:
        self.path = path.rstrip("/") if "://" in path else path
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None

    # -- filesystem ------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem behind this store (created on first use)."""
        if self._fs is None:
            import fsspec

            protocol = self.path.split("://", 1)[0] if "://" in self.path else "file"
            try:
                self._fs = fsspec.filesystem(protocol, **self.storage_options)
            except (ImportError, ValueError) as exc:
                raise StoreError(f"cannot open artifact store {self.path}: {exc}") from None
        return self._fs

    def join(self, *parts: str) -> str:
        """Join path parts under this store with ``/`` (a first part already under the store is kept)."""
        root = self.path.rstrip("/")
        if parts and parts[0].startswith(root):
            root, parts = parts[0].rstrip("/"), parts[1:]
        return "/".join([root, *(p.strip("/") for p in parts if p)])

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open a file of the store (a file opened for writing gets its parent folders)."""
        if any(m in mode for m in "wax") and "/" in uri:
            self.fs.makedirs(uri.rsplit("/", 1)[0], exist_ok=True)
        return self.fs.open(uri, mode)

    def exists(self, uri: str) -> bool:
        """Whether a file or folder exists."""
        return bool(self.fs.exists(uri))

    def makedirs(self, uri: str) -> None:
        """Create a folder and its parents (no error if it exists)."""
        self.fs.makedirs(uri, exist_ok=True)

    def rmtree(self, uri: str) -> None:
        """Delete a folder and everything in it, if it exists."""
        if self.fs.exists(uri):
            self.fs.rm(uri, recursive=True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (a commit of the bytes written under ``src``)."""
        if not self.fs.isdir(src):
            self.fs.mv(src, dst)
            return
        # File by file: fsspec's recursive mv also copies the folder entry
        # itself, which object stores (S3) do not have, and then fails.
        for rel, full in self.files(src):
            target = f"{dst.rstrip('/')}/{rel}"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(full, target)
        self.rmtree(src)

    def files(self, uri: str) -> Iterator[tuple[str, str]]:
        """Yield ``(relative name, full uri)`` of every file under a folder, sorted."""
        base = uri.rstrip("/")
        found = self.fs.find(base)
        for full in sorted(found):
            full = str(full)
            rel = full[len(base.split("://", 1)[-1]) :].lstrip("/") if "://" in base else os.path.relpath(full, base)
            yield rel, full

    def local_path(self, uri: str) -> str | None:
        """The local path of a uri when the store is a local folder, else None."""
        return None

    # -- artifacts -------------------------------------------------------------------
    def temp_uri(self, uri: str) -> str:
        """A fresh temporary folder name next to ``uri``."""
        return f"{uri}{_TMP_MARK}{uuid.uuid4().hex[:12]}"

    def commit(self, tmp: str, uri: str) -> None:
        """Move a completely written temporary folder into its final place."""
        if self.exists(uri):
            self.rmtree(uri)
        self.rename(tmp, uri)

    def content_hash(self, uri: str) -> str:
        """SHA-256 over the names and bytes of every file under ``uri``."""
        digest = hashlib.sha256()
        for rel, full in self.files(uri):
            digest.update(rel.replace(os.sep, "/").encode() + b"\0")
            with self.open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\0")
        return digest.hexdigest()


class LocalArtifactStore(ArtifactStore):
    """An artifact store in a local folder, using the OS directly for speed."""

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(os.path.abspath(os.path.expanduser(path)), storage_options)

    def join(self, *parts: str) -> str:
        root = self.path
        if parts and parts[0].startswith(root):
            root, parts = parts[0], parts[1:]
        return os.path.join(root, *(p.strip("/") for p in parts if p))

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        if any(m in mode for m in "wax"):
            os.makedirs(os.path.dirname(uri), exist_ok=True)
        return open(uri, mode)

    def exists(self, uri: str) -> bool:
        return os.path.exists(uri)

    def makedirs(self, uri: str) -> None:
        os.makedirs(uri, exist_ok=True)

    def rmtree(self, uri: str) -> None:
        shutil.rmtree(uri, ignore_errors=True)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def files(self, uri: str) -> Iterator[tuple[str, str]]:
        out = []
        for dirpath, _dirs, names in os.walk(uri):
            for n in names:
                full = os.path.join(dirpath, n)
                out.append((os.path.relpath(full, uri), full))
        yield from sorted(out)

    def local_path(self, uri: str) -> str | None:
        return uri

    def commit(self, tmp: str, uri: str) -> None:
        try:
            os.rename(tmp, uri)
        except OSError:
            # A leftover from an earlier, unregistered attempt: replace it.
            shutil.rmtree(uri, ignore_errors=True)
            os.rename(tmp, uri)
