"""Artifact stores: where artifact bytes live (a local folder or any fsspec URL).

Writes are atomic: on a filesystem a materializer writes into a temporary
folder next to the final one, which is renamed into place only once every byte
is written; the artifact is registered in the metadata store after that. Object
stores (S3, GCS, Azure) write each object whole and have no folders to rename,
so an artifact is written straight to its own URI, which nothing refers to
until its record is committed; leftovers of an earlier attempt are removed
first.

Files written through :meth:`ArtifactStore.open` of a remote store are
hashed as they are written, so the content hash of an artifact does not
download its bytes again; a local folder's files are read back.

Nothing is ever written, moved or deleted outside the store's root:
:meth:`ArtifactStore.join` takes only single path segments, and every
method that changes files checks that its path lies inside the root.
Temporary folders start with ``.tmp-``, a name no pipeline, step, run or
output can have (names never start with a dot).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from typing import IO, Any

from conveyor.exceptions import StoreError

TEMP_PREFIX = ".tmp-"
"""Temporary folders of artifacts being written; leftovers of killed saves can be removed any time."""

# Protocols whose "folders" are key prefixes: objects are written whole, nothing is renamed.
OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})


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
        self.protocol = self.path.split("://", 1)[0] if "://" in self.path else "file"
        #: True for object stores: artifacts are written in place, folders need no creating.
        self.flat = self.protocol in OBJECT_PROTOCOLS
        # SHA-256 of files written whole through open(), by normalized path, until hashed.
        self._digests: dict[str, str] = {}

    # -- filesystem ------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem behind this store (created on first use)."""
        if self._fs is None:
            import fsspec

            try:
                self._fs = fsspec.filesystem(self.protocol, **self.storage_options)
            except (ImportError, ValueError) as exc:
                raise StoreError(f"cannot open artifact store {self.path}: {exc}") from None
        return self._fs

    def join(self, *parts: str) -> str:
        """Join single path segments under this store with ``/`` (a first part already inside the store is kept).

        Raises:
            StoreError: a part is not one safe path segment (a separator, ``..``, a control character).
        """
        root = self.path.rstrip("/")
        if parts and self.contains(parts[0]):
            root, parts = parts[0].rstrip("/"), parts[1:]
        for part in parts:
            check_segment(part)
        return "/".join([root, *parts])

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` lies inside this store's root (segment by segment, never a mere string prefix).

        A path without the protocol (as the filesystem lists them) is the same path.
        """
        if not isinstance(uri, str) or "\0" in uri:
            return False
        root = _without_protocol(self.path).rstrip("/")
        path = _without_protocol(uri) if uri.startswith(f"{self.protocol}://") or "://" not in uri else None
        if path is None:
            return False
        if path.rstrip("/") == root:
            return True
        if not path.startswith(root + "/"):
            return False
        return all(seg not in ("", ".", "..") for seg in path[len(root) + 1 :].rstrip("/").split("/"))

    def check_inside(self, uri: str) -> str:
        """Return ``uri`` when it lies inside this store, else refuse.

        Raises:
            StoreError: ``uri`` is outside the store's root.
        """
        if not self.contains(uri):
            raise StoreError(
                f"{uri!r} is outside the artifact store {self.path}",
                "a record that points there was not written by conveyor; nothing outside the store is read or written",
            )
        return uri

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open a file of the store (a file opened for writing gets its parent folders).

        Raises:
            StoreError: ``uri`` is outside the store.
        """
        self.check_inside(uri)
        if any(m in mode for m in "wax") and "/" in uri and not self.flat:
            self.fs.makedirs(uri.rsplit("/", 1)[0], exist_ok=True)
        return self._digesting(uri, mode, self.fs.open(uri, mode))

    def _key(self, uri: str) -> str:
        """The form of a file's uri that :meth:`files` gives back."""
        return str(self.fs._strip_protocol(uri))

    def _digesting(self, uri: str, mode: str, f: IO[Any]) -> IO[Any]:
        if mode not in ("wb", "xb"):
            return f
        key = self._key(uri)
        self._digests.pop(key, None)
        return _DigestingWriter(f, key, self._digests)  # type: ignore[return-value]

    def exists(self, uri: str) -> bool:
        """Whether a file or folder exists."""
        return bool(self.fs.exists(uri))

    def makedirs(self, uri: str) -> None:
        """Create a folder and its parents (no error if it exists; nothing to do in an object store)."""
        self.check_inside(uri)
        if not self.flat:
            self.fs.makedirs(uri, exist_ok=True)

    def rmtree(self, uri: str) -> None:
        """Delete a folder and everything in it, if it exists (never the root itself)."""
        self._check_removable(uri)
        self._forget(uri)
        if self.flat:
            found = self.fs.find(uri)
            if found:
                self.fs.rm(found)
            return
        if self.fs.exists(uri):
            self.fs.rm(uri, recursive=True)

    def remove(self, uri: str) -> None:
        """Delete a file or a folder if it exists, then the folders above it that it leaves empty.

        Folders are removed up to the store's root, never the root itself.
        """
        self._check_removable(uri)
        self._forget(uri)
        if self.flat or self.fs.isdir(uri):
            self.rmtree(uri)
        elif self.fs.exists(uri):
            self.fs.rm(uri)
        if self.flat:
            return  # an object store has no folders to leave behind
        root = _without_protocol(self.path).rstrip("/")
        folder = uri.rstrip("/").rsplit("/", 1)[0]
        while self.contains(folder) and _without_protocol(folder).rstrip("/") != root:
            try:
                if self.fs.ls(folder, detail=False):
                    return
                self.fs.rmdir(folder)
            except OSError:
                return
            folder = folder.rsplit("/", 1)[0]

    def _forget(self, uri: str) -> None:
        prefix = self._key(uri).rstrip("/\\")
        for key in [
            k for k in self._digests if k == prefix or k.startswith(prefix + "/") or k.startswith(prefix + os.sep)
        ]:
            del self._digests[key]

    def _check_removable(self, uri: str) -> None:
        if _without_protocol(self.check_inside(uri)).rstrip("/") == _without_protocol(self.path).rstrip("/"):
            raise StoreError(f"refusing to delete the whole artifact store {self.path}")

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (a commit of the bytes written under ``src``)."""
        self.check_inside(src)
        self.check_inside(dst)
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
        """A fresh temporary folder name next to ``uri`` (``.tmp-<random>``, a name no output can have)."""
        parent = uri.rstrip("/").rsplit("/", 1)[0]
        return f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}"

    def remove_temporary(self, folder: str) -> int:
        """Remove leftovers of killed saves (``.tmp-*`` entries) directly inside ``folder``; returns how many."""
        self.check_inside(folder)
        try:
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        except (FileNotFoundError, OSError):
            return 0
        stale = [n for n in names if n.startswith(TEMP_PREFIX)]
        for name in stale:
            self.rmtree(f"{folder.rstrip('/')}/{name}")
        return len(stale)

    def begin_artifact(self, uri: str) -> str:
        """Where the files of the artifact ``uri`` are written; :meth:`commit` puts them in place.

        A filesystem gets a fresh temporary folder; an object store writes in
        place, after removing what an earlier, unregistered attempt left there.
        """
        if self.flat:
            self.rmtree(uri)
            return uri
        tmp = self.temp_uri(uri)
        self.makedirs(tmp)
        return tmp

    def commit(self, tmp: str, uri: str) -> None:
        """Move a completely written temporary folder into its final place."""
        self.check_inside(uri)
        self._forget(tmp)
        if tmp == uri:
            return  # written in place (an object store)
        if self.exists(uri):
            self.rmtree(uri)
        self.rename(tmp, uri)

    def manifest(self, uri: str) -> dict[str, int]:
        """``{relative name: size}`` of every file under ``uri`` (empty when nothing is there)."""
        base = uri.rstrip("/")
        try:
            found = self.fs.find(base, detail=True)
        except (FileNotFoundError, OSError):
            return {}
        prefix = base.split("://", 1)[-1] + "/"
        out = {}
        for full, info in found.items():
            rel = str(full).split("://", 1)[-1]
            if rel.startswith(prefix) and info.get("type", "file") == "file":
                out[rel[len(prefix) :]] = int(info.get("size") or 0)
        return out

    def content_hash(self, uri: str) -> str:
        """SHA-256 over the names and the SHA-256 of every file under ``uri``.

        Files written whole through :meth:`open` were hashed as they were
        written; any other file is read.
        """
        digest = hashlib.sha256()
        for rel, full in self.files(uri):
            file_digest = self._digests.get(self._key(full))
            if file_digest is None:
                sha = hashlib.sha256()
                with self.open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        sha.update(chunk)
                file_digest = sha.hexdigest()
            digest.update(f"{rel.replace(os.sep, '/')}\0{file_digest}\n".encode())
        return digest.hexdigest()


class LocalArtifactStore(ArtifactStore):
    """An artifact store in a local folder, using the OS directly for speed."""

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(os.path.abspath(os.path.expanduser(path)), storage_options)
        # Resolved once: every read and write checks containment against it.
        self._real_path = os.path.realpath(self.path)

    def join(self, *parts: str) -> str:
        root = self.path
        if parts and self.contains(parts[0]):
            root, parts = parts[0], parts[1:]
        for part in parts:
            check_segment(part)
        return os.path.join(root, *parts)

    def contains(self, uri: str) -> bool:
        return self._contains(uri, set())

    def _check_all_inside(self, *uris: str) -> None:
        # Paths side by side (a temporary folder and its final place) share the entries above them:
        # each is looked at once.
        seen: set[str] = set()
        for uri in uris:
            if not self._contains(uri, seen):
                self.check_inside(uri)  # refuses with the usual message

    def _contains(self, uri: str, seen: set[str]) -> bool:
        if not isinstance(uri, str) or "\0" in uri or not os.path.isabs(uri):
            return False
        # Lexically (no ".." can climb out) and after symlinks (no link can lead out).
        path = os.path.normpath(uri)
        if not _under(path, self.path):
            return False
        if path != uri or path == self.path:
            # The system resolves "x/.." after a link x from where x leads, not lexically: such paths
            # (join() makes none) are resolved whole.
            return _under(os.path.realpath(uri), self._real_path)
        # Only what lies below the root can lead out: look at those entries, without following
        # them. As long as none is a link, the path resolves inside whatever the root resolves to,
        # without resolving the root's own folders again for every file (a realpath does).
        prefix = self.path.rstrip(os.sep) + os.sep
        at = prefix
        for name in path[len(prefix) :].split(os.sep):
            at += name
            if at not in seen:
                try:
                    if stat.S_ISLNK(os.lstat(at).st_mode):
                        return _under(os.path.realpath(path), self._real_path)
                except OSError:
                    return True  # nothing there (or not reachable): nothing below it to follow
                seen.add(at)
            at += os.sep
        return True

    def _check_removable(self, uri: str) -> None:
        self.check_inside(uri)
        if os.path.realpath(uri) == os.path.realpath(self.path):
            raise StoreError(f"refusing to delete the whole artifact store {self.path}")

    def remove_temporary(self, folder: str) -> int:
        self.check_inside(folder)
        try:
            stale = [e.path for e in os.scandir(folder) if e.name.startswith(TEMP_PREFIX)]
        except OSError:
            return 0
        for path in stale:
            self.rmtree(path)
        return len(stale)

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        # Plain files: reading them back to hash is cheap, and libraries keep
        # their fast paths for real files (numpy writes arrays with tofile).
        self.check_inside(uri)
        if any(m in mode for m in "wax"):
            os.makedirs(os.path.dirname(uri), exist_ok=True)
        return open(uri, mode)

    def _key(self, uri: str) -> str:
        return os.path.normpath(uri)  # no fsspec filesystem needed to hash a local folder

    def exists(self, uri: str) -> bool:
        return os.path.exists(uri)

    def makedirs(self, uri: str) -> None:
        os.makedirs(self.check_inside(uri), exist_ok=True)

    def rmtree(self, uri: str) -> None:
        self._check_removable(uri)
        shutil.rmtree(uri, ignore_errors=True)

    def remove(self, uri: str) -> None:
        self._check_removable(uri)
        if os.path.isdir(uri) and not os.path.islink(uri):
            shutil.rmtree(uri, ignore_errors=True)
        else:
            try:
                os.remove(uri)
            except FileNotFoundError:
                pass
        root = os.path.realpath(self.path)
        folder = os.path.dirname(os.path.normpath(uri))
        while self.contains(folder) and os.path.realpath(folder) != root:
            try:
                os.rmdir(folder)  # only when empty
            except OSError:
                return
            folder = os.path.dirname(folder)

    def rename(self, src: str, dst: str) -> None:
        self._check_all_inside(src, dst)
        os.replace(src, dst)

    def files(self, uri: str) -> Iterator[tuple[str, str]]:
        for rel, full, _entry in self._entries(uri):
            yield rel, full

    def _entries(self, uri: str) -> list[tuple[str, str, os.DirEntry[str]]]:
        # What os.walk finds (links to folders are not followed), sorted, with each file's entry
        # for its size: without os.walk's and relpath's work per call, which every step pays.
        out = []
        pending = [(uri, "")]
        while pending:
            folder, rel = pending.pop()
            try:
                with os.scandir(folder) as found:
                    entries = list(found)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    out.append((rel + entry.name, entry.path, entry))
                elif not entry.is_symlink():
                    pending.append((entry.path, rel + entry.name + os.sep))
        out.sort(key=lambda item: (item[0], item[1]))
        return out

    def local_path(self, uri: str) -> str | None:
        return uri

    def manifest(self, uri: str) -> dict[str, int]:
        out = {}
        for rel, _full, entry in self._entries(uri):
            try:
                out[rel.replace(os.sep, "/")] = entry.stat().st_size
            except OSError:
                continue
        return out

    def commit(self, tmp: str, uri: str) -> None:
        self._check_all_inside(tmp, uri)
        try:
            os.rename(tmp, uri)
        except OSError:
            # A leftover from an earlier, unregistered attempt: replace it.
            shutil.rmtree(uri, ignore_errors=True)
            os.rename(tmp, uri)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _without_protocol(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


# Separators (either kind) and control characters.
_UNSAFE_IN_SEGMENT = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_segment(part: str) -> str:
    """Return ``part`` when it is one safe path segment of the store layout, else refuse.

    Names that reach the layout were checked against the naming rule before
    anything ran; this is the last line, for whatever else calls :meth:`ArtifactStore.join`.

    Raises:
        StoreError: a separator, ``.``/``..``, an empty part, or a control character.
    """
    if not isinstance(part, str) or part in ("", ".", "..") or _UNSAFE_IN_SEGMENT.search(part):
        raise StoreError(f"{part!r} cannot be part of an artifact path", "names are checked before a run starts")
    return part


class _DigestingWriter:
    """A binary file being written whose SHA-256 is recorded when it is closed.

    Anything that could write around :meth:`write` (seeking back, truncating,
    the raw descriptor) drops the digest: the file is then read when hashed.
    """

    def __init__(self, raw: IO[bytes], key: str, digests: dict[str, str]) -> None:
        self._raw = raw
        self._key = key
        self._digests = digests
        self._sha: Any = hashlib.sha256()

    def write(self, data: Any) -> int:
        written = self._raw.write(data)
        if self._sha is not None:
            view = memoryview(data)
            if written is None or written == view.nbytes:
                self._sha.update(view)
            else:
                self._sha = None
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def seek(self, *args: Any) -> int:
        self._sha = None
        return self._raw.seek(*args)

    def truncate(self, *args: Any) -> int:
        self._sha = None
        return self._raw.truncate(*args)

    def fileno(self) -> int:
        self._sha = None
        return self._raw.fileno()

    def close(self) -> None:
        was_closed = self._raw.closed
        self._raw.close()
        if self._sha is not None and not was_closed:
            self._digests[self._key] = self._sha.hexdigest()
        self._sha = None

    def __enter__(self) -> _DigestingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
