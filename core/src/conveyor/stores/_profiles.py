"""Profiles: named connections to a metadata store, kept in the user's conveyor folder.

A profile is either ``local`` (the embedded store of the repository you are
in, the zero-setup default) or a conveyor server's URL with the credential
``conveyor login`` got for it. The profiles file is
``$CONVEYOR_CONFIG_DIR/profiles.json`` (default ``~/.config/conveyor``),
written with mode 0600 since it holds session tokens.

:func:`store_target` is the one rule that says which store a process uses:
``CONVEYOR_STORE_URL``, else ``CONVEYOR_SERVER`` (with ``CONVEYOR_API_KEY``),
else the active profile when it names a server, else the repository's
configured URL, else its SQLite file.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.constants import ENV_API_KEY, ENV_CONFIG_DIR, ENV_PROFILE, ENV_SERVER, ENV_STORE_URL
from conveyor.exceptions import ConfigError

LOCAL_PROFILE = "local"
"""The profile of the repository's embedded store; always there, never deleted."""

_FILE = "profiles.json"


def config_dir() -> Path:
    """The user's conveyor folder: ``CONVEYOR_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/conveyor`` or ``~/.config/conveyor``."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "conveyor"


def is_server_url(url: str) -> bool:
    """Whether a store URL names a conveyor server (http or https)."""
    return url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Profile:
    """A named connection.

    Attributes:
        name: what ``conveyor profile use`` takes.
        url: the server's URL, or None for the repository's embedded store.
        token: the session token or API key sent to the server (never shown).
        username: who logged in, for messages.
        expires: when the session ends (ISO 8601), if it does.
    """

    name: str
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    expires: str | None = None

    def describe(self) -> str:
        """One line for people: where it points and as whom (never the token)."""
        if self.url is None:
            return "the repository's own store"
        who = f" as {self.username}" if self.username else ""
        return f"{self.url}{who}" + ("" if self.token else " (logged out)")


class Profiles:
    """The profiles file: read, change and write it (atomically, mode 0600)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config_dir()
        self.path = self.folder / _FILE

    def exists(self) -> bool:
        """Whether the user has set up any profile."""
        return self.path.exists()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {"active": LOCAL_PROFILE, "profiles": {}}
        except (OSError, ValueError):
            raise ConfigError(f"{self.path} is not a valid profiles file", "fix or delete it") from None
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
            raise ConfigError(f"{self.path} is not a valid profiles file", "fix or delete it")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def list(self) -> list[Profile]:
        """Every profile, ``local`` first, then by name."""
        data = self._load()
        out = [Profile(LOCAL_PROFILE)]
        for name in sorted(data["profiles"]):
            out.append(self._profile(name, data["profiles"][name]))
        return out

    @staticmethod
    def _profile(name: str, raw: Any) -> Profile:
        if not isinstance(raw, dict):
            return Profile(name)
        return Profile(
            name=name,
            url=raw.get("url"),
            token=raw.get("token"),
            username=raw.get("username"),
            expires=raw.get("expires"),
        )

    @property
    def active_name(self) -> str:
        """``CONVEYOR_PROFILE``, else the one ``conveyor profile use`` chose, else ``local``."""
        return os.environ.get(ENV_PROFILE) or self._load().get("active") or LOCAL_PROFILE

    def get(self, name: str) -> Profile:
        """A profile by name.

        Raises:
            ConfigError: no such profile.
        """
        if name == LOCAL_PROFILE:
            return Profile(LOCAL_PROFILE)
        data = self._load()
        if name not in data["profiles"]:
            known = ", ".join(p.name for p in self.list())
            raise ConfigError(f"no profile {name!r}", f"profiles: {known}; add one with `conveyor login URL`")
        return self._profile(name, data["profiles"][name])

    def active(self) -> Profile:
        """The profile in use."""
        return self.get(self.active_name)

    def save(self, profile: Profile, *, activate: bool = True) -> None:
        """Add or replace a server profile (and make it the active one)."""
        if profile.name == LOCAL_PROFILE or profile.url is None:
            raise ConfigError(f"profile {LOCAL_PROFILE!r} is the repository's own store and cannot be changed")
        data = self._load()
        data["profiles"][profile.name] = {
            "url": profile.url,
            "token": profile.token,
            "username": profile.username,
            "expires": profile.expires,
        }
        if activate:
            data["active"] = profile.name
        self._save(data)

    def use(self, name: str) -> Profile:
        """Make a profile the active one."""
        profile = self.get(name)
        data = self._load()
        data["active"] = name
        self._save(data)
        return profile

    def delete(self, name: str) -> None:
        """Forget a profile and its credential (``local`` becomes active if it was)."""
        if name == LOCAL_PROFILE:
            raise ConfigError(f"profile {LOCAL_PROFILE!r} is the repository's own store and cannot be deleted")
        self.get(name)
        data = self._load()
        del data["profiles"][name]
        if data.get("active") == name:
            data["active"] = LOCAL_PROFILE
        self._save(data)

    def token_for(self, url: str) -> str | None:
        """The credential of the first profile for this server URL, if any."""
        for profile in self.list():
            if profile.url is not None and profile.url.rstrip("/") == url.rstrip("/") and profile.token:
                return profile.token
        return None


@dataclass(frozen=True)
class StoreTarget:
    """Which metadata store a process uses, and why.

    Attributes:
        url: the store's URL (SQLAlchemy, or a server's http(s) URL).
        token: the credential for a server (None for SQL stores).
        source: where the choice came from, for messages.
        profile: the profile's name when one chose it.
        announce: whether commands should say which store they use (anything
            but the zero-setup default).
    """

    url: str
    token: str | None = field(default=None, repr=False)
    source: str = "the repository"
    profile: str | None = None
    announce: bool = False

    def describe(self) -> str:
        """One line for people: ``profile 'team': http://host:8237 as ana``."""
        if self.profile is not None:
            return f"profile {self.profile!r}: {self.source}"
        return self.source


def store_target(folder: Path | None) -> StoreTarget:
    """The metadata store of this process, by the one precedence rule (see the module docstring).

    Args:
        folder: the repository's ``.conveyor/`` folder (for its config and SQLite file), if any.

    Raises:
        ConfigError: the profiles file or the repository config is unreadable; a server
            profile was logged out of.
    """
    env_url = os.environ.get(ENV_STORE_URL)
    if env_url:
        token = os.environ.get(ENV_API_KEY) or (Profiles().token_for(env_url) if is_server_url(env_url) else None)
        return StoreTarget(env_url, token, f"{ENV_STORE_URL}={_shown(env_url)}", announce=is_server_url(env_url))
    server = os.environ.get(ENV_SERVER)
    if server:
        token = os.environ.get(ENV_API_KEY) or Profiles().token_for(server)
        return StoreTarget(server.rstrip("/"), token, f"{ENV_SERVER}={server}", announce=True)
    profiles = Profiles()
    has_profiles = profiles.exists() or bool(os.environ.get(ENV_PROFILE))
    if has_profiles:
        profile = profiles.active()
        if profile.url is not None:
            return StoreTarget(profile.url, profile.token, profile.describe(), profile.name, announce=True)
    url = None
    if folder is not None:
        try:
            url = json.loads((folder / "config.json").read_text()).get("store_url")
        except FileNotFoundError:
            url = None
        except (OSError, ValueError):
            raise ConfigError(f"{folder / 'config.json'} is not valid JSON", "fix or delete it") from None
    source = "the repository's own store"
    if url:
        source = f"the repository's store_url {_shown(url)}"
    elif folder is not None:
        url = f"sqlite:///{folder / 'conveyor.db'}"
    else:
        url = ""
    return StoreTarget(url, None, source, LOCAL_PROFILE if has_profiles else None, announce=has_profiles)


def _shown(url: str) -> str:
    # Never print a database password.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
