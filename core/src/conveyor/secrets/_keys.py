"""The encryption key of the secrets store: where it comes from, and how it is kept.

The key is a Fernet key (``cryptography``): AES-128-CBC with an HMAC-SHA256,
so a token that was changed or made with another key fails to decrypt
instead of giving garbage. It comes from

1. ``CONVEYOR_SECRETS_KEY``: one key, or several separated by commas (the
   first encrypts, all decrypt: how a key is rotated when it lives in the
   environment), else
2. a key file: ``CONVEYOR_SECRETS_KEY_FILE``, else ``.conveyor/secrets.key``
   of the repository, created with mode 0600 when the first secret is
   stored. A key file that other users can read is refused, as ssh does.

During :func:`conveyor.secrets.rotate_key` the new key waits in
``secrets.key.new`` until every value is re-encrypted; that file is also
read as a decryption key, so values stay readable whatever moment a crash
interrupts the rotation.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.constants import ENV_REPOSITORY, REPOSITORY_DIR
from conveyor.exceptions import SecretError

ENV_SECRETS_KEY = "CONVEYOR_SECRETS_KEY"
"""A Fernet key (or several, comma-separated; the first encrypts) for the secrets store."""

ENV_SECRETS_KEY_FILE = "CONVEYOR_SECRETS_KEY_FILE"
"""Path of the key file; overrides ``.conveyor/secrets.key``."""

KEY_FILE = "secrets.key"
"""Name of the key file in the repository's ``.conveyor/`` folder."""

PENDING_SUFFIX = ".new"
"""Suffix of the key file written first during a rotation."""

_GENERATE_HINT = "make one with: conveyor secret generate-key"


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def key_id(key: bytes) -> str:
    """A short fingerprint of a key, safe to show and store (it does not reveal the key)."""
    return hashlib.sha256(b"conveyor-secrets-key\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class KeyRing:
    """The keys of the secrets store: the first encrypts, every one decrypts.

    Attributes:
        source: where the keys came from (an environment variable or a path), for messages.
        path: the key file, when the keys came from one.
    """

    keys: tuple[bytes, ...] = field(repr=False)
    source: str
    path: Path | None = None

    @property
    def primary_id(self) -> str:
        """Fingerprint of the key that encrypts."""
        return key_id(self.keys[0])

    @property
    def ids(self) -> tuple[str, ...]:
        """Fingerprints of every key."""
        return tuple(key_id(k) for k in self.keys)

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, data: bytes) -> str:
        """A Fernet token of ``data`` made with the first key."""
        return self._fernet().encrypt(data).decode("ascii")

    def decrypt(self, token: str) -> bytes | None:
        """The data of a token, or None when none of the keys made it (or it was altered)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return None


def parse_keys(text: str, source: str) -> tuple[bytes, ...]:
    """Keys from text: one per line or comma-separated, first one first.

    Raises:
        SecretError: no key, or one that is not a Fernet key (the key itself is never shown).
    """
    from cryptography.fernet import Fernet

    parts = [p.strip() for line in text.splitlines() for p in line.split(",")]
    keys = tuple(p.encode("ascii", "replace") for p in parts if p and not p.startswith("#"))
    if not keys:
        raise SecretError(f"{source} holds no secrets key", _GENERATE_HINT)
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            which = f"key {number} in {source}" if len(keys) > 1 else source
            raise SecretError(
                f"{which} is not a valid secrets key (32 url-safe base64-encoded bytes)", _GENERATE_HINT
            ) from None
    return keys


def repository_folder() -> Path | None:
    """The ``.conveyor/`` folder of the working folder's repository, or None.

    The same search as ``Repository.find`` (``CONVEYOR_REPOSITORY``, else
    upwards from the working folder): secrets sit below the repository layer.
    """
    env = os.environ.get(ENV_REPOSITORY)
    if env:
        return Path(env).resolve() / REPOSITORY_DIR
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / REPOSITORY_DIR).is_dir():
            return folder / REPOSITORY_DIR
    return None


def key_file_path(folder: Path | None = None) -> Path | None:
    """The key file: ``CONVEYOR_SECRETS_KEY_FILE``, else ``secrets.key`` in the repository's ``.conveyor/``.

    Args:
        folder: the repository's ``.conveyor/`` folder (default: :func:`repository_folder`).
    """
    env = os.environ.get(ENV_SECRETS_KEY_FILE)
    if env:
        return Path(env).expanduser()
    if folder is None:
        folder = repository_folder()
    return folder / KEY_FILE if folder is not None else None


def pending_path(path: Path) -> Path:
    """Where the new key waits during a rotation."""
    return path.with_name(path.name + PENDING_SUFFIX)


def install_pending_key(path: Path) -> None:
    """Make the key waiting in ``<path>.new`` the key file (atomically), ending a rotation."""
    os.replace(pending_path(path), path)
    _fsync_dir(path.parent)


def read_key_file(path: Path) -> tuple[bytes, ...]:
    """The keys in a key file (refused when other users can read it).

    Raises:
        SecretError: the file is readable by others, unreadable, or holds no valid key.
    """
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & 0o077:
            raise SecretError(
                f"secrets key file {path} can be read by other users (mode {mode & 0o777:o})",
                f"run: chmod 600 {path}",
            )
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read secrets key file {path}: {type(exc).__name__}") from None
    return parse_keys(text, str(path))


def write_private_file(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write a one-line file with mode 0600, atomically (a reader never sees half a key).

    Args:
        exclusive: do not replace an existing file; returns False when there was one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if the file exists: no two processes create two keys
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
            tmp = ""
        _fsync_dir(path.parent)
        return True
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_keyring(*, create: bool = False, folder: Path | None = None) -> KeyRing:
    """The secrets keys in force.

    Args:
        create: make the key file (mode 0600) when there is none.
        folder: the repository's ``.conveyor/`` folder (default: the working folder's repository).

    Raises:
        SecretError: there is no key (and ``create`` is false), or it is unusable.
    """
    env = os.environ.get(ENV_SECRETS_KEY)
    if env and env.strip():
        return KeyRing(parse_keys(env, f"${ENV_SECRETS_KEY}"), f"${ENV_SECRETS_KEY}")
    path = key_file_path(folder)
    if path is None:
        raise SecretError(
            "no secrets key: not inside a conveyor repository",
            f"set {ENV_SECRETS_KEY} or {ENV_SECRETS_KEY_FILE}",
        )
    if not path.exists():
        if not create:
            raise SecretError(
                f"no secrets key: {path} does not exist",
                f"set {ENV_SECRETS_KEY} or {ENV_SECRETS_KEY_FILE} to the key the secrets were stored with",
            )
        write_private_file(path, generate_key(), exclusive=True)
    keys = read_key_file(path)
    pending = pending_path(path)
    if pending.exists():  # a rotation was interrupted: its new key may already be in use
        keys = keys + tuple(k for k in read_key_file(pending) if k not in keys)
    return KeyRing(keys, str(path), path)
